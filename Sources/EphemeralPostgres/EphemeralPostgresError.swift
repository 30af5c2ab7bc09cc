/// Why a throwaway server could not be made, started or stopped.
public struct EphemeralPostgresError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong: a closed set, so a test can switch over it.
    public enum Code: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// `initdb`, `pg_ctl` or `postgres` is not installed where we look.
        case binariesNotFound
        /// Running as root, and the unprivileged user to run the server as does not exist.
        case unprivilegedUserMissing
        /// A setting name or value cannot be written to `postgresql.conf`.
        case invalidSetting
        /// A file-system step failed (temp folder, pipe, config file).
        case fileSystem
        /// `initdb` failed.
        case initdbFailed
        /// The server did not start.
        case startFailed
        /// The server did not stop.
        case stopFailed
        /// The TLS certificate could not be made (openssl missing or failing).
        case tlsSetupFailed
        /// The server was already shut down and its folder removed.
        case shutDown
        /// The `pgbouncer` program is not installed where we look.
        case pgbouncerNotFound

        /// The code's readable name.
        public var name: String { rawValue }
        public var description: String { rawValue }
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
