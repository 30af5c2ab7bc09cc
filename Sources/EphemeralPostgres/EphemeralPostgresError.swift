/// Why a throwaway server could not be made, started or stopped.
public struct EphemeralPostgresError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, as a small extensible set of named codes.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's readable name.
        public let name: String
        init(_ name: String) { self.name = name }

        /// `initdb`, `pg_ctl` or `postgres` is not installed where we look.
        public static let binariesNotFound = Code("binariesNotFound")
        /// Running as root, and the unprivileged user to run the server as does not exist.
        public static let unprivilegedUserMissing = Code("unprivilegedUserMissing")
        /// A setting name or value cannot be written to `postgresql.conf`.
        public static let invalidSetting = Code("invalidSetting")
        /// A file-system step failed (temp folder, pipe, config file).
        public static let fileSystem = Code("fileSystem")
        /// `initdb` failed.
        public static let initdbFailed = Code("initdbFailed")
        /// The server did not start.
        public static let startFailed = Code("startFailed")
        /// The server did not stop.
        public static let stopFailed = Code("stopFailed")
        /// The TLS certificate could not be made (openssl missing or failing).
        public static let tlsSetupFailed = Code("tlsSetupFailed")
        /// The server was already shut down and its folder removed.
        public static let shutDown = Code("shutDown")
        /// The `pgbouncer` program is not installed where we look.
        public static let pgbouncerNotFound = Code("pgbouncerNotFound")

        public var description: String { name }
    }

    /// What went wrong.
    public var code: Code
    /// A readable explanation with what to do about it.
    public var message: String

    /// Creates an error.
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "EphemeralPostgres \(code.name): \(message)" }
}
