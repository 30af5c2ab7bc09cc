#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

extension EphemeralPgBouncer {
    /// How the pooler hands server connections to clients (`pool_mode`).
    public enum PoolMode: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// A server connection belongs to one client connection until the client disconnects.
        case session
        /// A server connection belongs to a client only for one transaction.
        case transaction
        /// A server connection belongs to a client only for one statement (no multi-statement transactions).
        case statement

        public var description: String { rawValue }
    }

    /// How the throwaway pooler is made. Every setting is written explicitly to its `pgbouncer.ini`.
    public struct Configuration: Sendable {
        /// Server connections per database and user (`default_pool_size`).
        public var poolSize: Int
        /// Client connections the pooler accepts in all (`max_client_conn`).
        public var maxClientConnections: Int
        /// Startup parameters the pooler accepts and ignores instead of refusing the client
        /// (`ignore_startup_parameters`). The pooler itself only knows `client_encoding`,
        /// `DateStyle`, `TimeZone`, `standard_conforming_strings` and `application_name`; any
        /// other parameter makes it close the connection with "unsupported startup parameter".
        public var ignoredStartupParameters: [String]
        /// `server_reset_query` (run when a session-mode client gives its server connection back);
        /// nil keeps the pooler's default, `DISCARD ALL`.
        public var serverResetQuery: String?
        /// More `[pgbouncer]` settings, e.g. `["server_idle_timeout": "5"]`. Names are lowercase
        /// letters, digits and `_`; values may not hold line breaks.
        public var settings: [String: String]
        /// When running as root: the unprivileged user that runs the pooler (it refuses root).
        public var unprivilegedUser: String
        /// Where to look for the `pgbouncer` program.
        public var searchPath: [String]
        /// The parent of the temporary folder (kept short: Unix socket paths are limited to 107 bytes).
        public var temporaryDirectoryParent: String
        /// How long to wait for the pooler to accept connections and answer a query through it.
        public var startTimeout: Duration
        /// The loopback port to listen on; nil picks a free one (and another if a different
        /// process takes it first). A fixed port lets a test put a new pooler where an old one
        /// stood, as a failover puts a new address behind the same URL.
        public var port: Int?

        /// A configuration with the pooler's usual defaults.
        public init(
            poolSize: Int = 20,
            maxClientConnections: Int = 200,
            ignoredStartupParameters: [String] = ["extra_float_digits"],
            serverResetQuery: String? = nil,
            settings: [String: String] = [:],
            unprivilegedUser: String = "postgres",
            searchPath: [String] = EphemeralPgBouncer.searchPath(),
            temporaryDirectoryParent: String = "/tmp",
            startTimeout: Duration = .seconds(30),
            port: Int? = nil
        ) {
            self.port = port
            self.poolSize = poolSize
            self.maxClientConnections = maxClientConnections
            self.ignoredStartupParameters = ignoredStartupParameters
            self.serverResetQuery = serverResetQuery
            self.settings = settings
            self.unprivilegedUser = unprivilegedUser
            self.searchPath = searchPath
            self.temporaryDirectoryParent = temporaryDirectoryParent
            self.startTimeout = startTimeout
        }

        /// The text of `pgbouncer.ini`; pure, so it can be tested without a pooler.
        func iniText(
            poolMode: PoolMode, port: Int, baseDirectory: String, serverSocketDirectory: String, serverPort: Int, user: String
        ) throws -> String {
            guard poolSize > 0, maxClientConnections > 0 else {
                throw EphemeralPostgresError(code: .invalidSetting, message: "the pool size and the client connection limit must be positive")
            }
            var all: [(String, String)] = [
                ("listen_addr", EphemeralPgBouncer.loopbackHost),
                ("listen_port", "\(port)"),
                ("unix_socket_dir", baseDirectory + "/socket"),
                ("auth_type", "trust"),
                ("auth_file", baseDirectory + "/userlist.txt"),
                ("admin_users", user),
                ("stats_users", user),
                ("pool_mode", poolMode.rawValue),
                ("default_pool_size", "\(poolSize)"),
                ("max_client_conn", "\(maxClientConnections)"),
                ("logfile", baseDirectory + "/pgbouncer.log"),
                ("pidfile", baseDirectory + "/pgbouncer.pid"),
            ]
            if !ignoredStartupParameters.isEmpty {
                all.append(("ignore_startup_parameters", ignoredStartupParameters.joined(separator: ",")))
            }
            if let serverResetQuery { all.append(("server_reset_query", serverResetQuery)) }
            all += settings.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            let lines = try all.map { name, value -> String in
                guard !name.isEmpty, name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }) else {
                    throw EphemeralPostgresError(code: .invalidSetting, message: "pgbouncer setting name '\(name)' may hold only lowercase letters, digits and '_'")
                }
                try Self.checkValue(value, of: name)
                return "\(name) = \(value)"
            }
            try Self.checkValue(serverSocketDirectory, of: "the server's socket folder")
            guard !serverSocketDirectory.contains("'"), !serverSocketDirectory.contains("\\") else {
                throw EphemeralPostgresError(code: .invalidSetting, message: "the server's socket folder \(serverSocketDirectory) holds a quote or backslash")
            }
            // `*`: every database name a client asks for is passed through to the server as is.
            return """
            ; written by EphemeralPgBouncer
            [databases]
            * = host='\(serverSocketDirectory)' port=\(serverPort)

            [pgbouncer]
            \(lines.joined(separator: "\n"))

            """
        }

        private static func checkValue(_ value: String, of name: String) throws {
            guard !value.utf8.contains(where: { $0 == 0 || $0 == 0x0A || $0 == 0x0D }) else {
                throw EphemeralPostgresError(code: .invalidSetting, message: "the value of pgbouncer setting '\(name)' contains a line break or NUL")
            }
        }
    }

    /// The folders searched for `pgbouncer`, in order: each `PATH` entry, then `/usr/sbin`
    /// (where Debian installs it, often not on a non-root user's `PATH`).
    public static func searchPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var folders = (environment["PATH"] ?? "").split(separator: ":").map(String.init)
        if !folders.contains("/usr/sbin") { folders.append("/usr/sbin") }
        return folders
    }

    /// Finds the `pgbouncer` program.
    ///
    /// - Throws: ``EphemeralPostgresError/Code/pgbouncerNotFound`` saying what to install.
    public static func locateExecutable(searchPath: [String] = EphemeralPgBouncer.searchPath()) throws -> String {
        for folder in searchPath where !folder.isEmpty {
            let candidate = folder + "/pgbouncer"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        let looked = searchPath.filter { !$0.isEmpty }.joined(separator: ":")
        throw EphemeralPostgresError(
            code: .pgbouncerNotFound,
            message: "the pgbouncer program was not found on \(looked.isEmpty ? "an empty search path" : looked). Install it (Debian/Ubuntu: `apt-get install pgbouncer`)."
        )
    }
}
