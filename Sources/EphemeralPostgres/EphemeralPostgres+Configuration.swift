import Foundation

extension EphemeralPostgres {
    /// How the throwaway server is made. Every setting is passed explicitly.
    public struct Configuration: Sendable {
        /// `max_connections`.
        public var maxConnections: Int
        /// `max_locks_per_transaction` (sizes the shared lock table together with `maxConnections`).
        public var maxLocksPerTransaction: Int
        /// Turn off `fsync`, `synchronous_commit` and `full_page_writes`: much faster, and a crash
        /// loses data. Off unless asked for.
        public var disableDurability: Bool
        /// More `postgresql.conf` settings, e.g. `["deadlock_timeout": "100ms"]`. Names are
        /// lowercase letters, digits, `_` and `.`; values are single-quoted for you.
        public var settings: [String: String]
        /// Listen on `127.0.0.1` at ``EphemeralPostgres/port`` too (for TCP clients such as pgbench
        /// with `-h 127.0.0.1`); the Unix socket is always there.
        public var listenOnLoopback: Bool
        /// When running as root: the unprivileged user that owns the folder and runs the server
        /// (initdb refuses to run as root).
        public var unprivilegedUser: String
        /// The server's superuser role (trust authentication, local connections only).
        public var superuser: String
        /// Where to look for the server programs.
        public var searchPath: [String]
        /// The parent of the temporary folder (kept short: Unix socket paths are limited to 107 bytes).
        public var temporaryDirectoryParent: String
        /// How long `pg_ctl` waits for the server to start or stop.
        public var startTimeoutSeconds: Int
        /// Serve TLS on the TCP listener with a self-signed certificate made by `openssl` at
        /// start (nil: no TLS, the default). See ``EphemeralPostgres/tlsCertificatePath``.
        public var tls: TLS?
        /// How TCP clients authenticate (Unix-socket clients are always trusted).
        public var hostAuthentication: HostAuthentication

        /// A configuration with durable defaults.
        public init(
            maxConnections: Int = 100,
            maxLocksPerTransaction: Int = 64,
            disableDurability: Bool = false,
            settings: [String: String] = [:],
            listenOnLoopback: Bool = true,
            unprivilegedUser: String = "postgres",
            superuser: String = "postgres",
            searchPath: [String] = PostgresBinaries.searchPath(),
            temporaryDirectoryParent: String = "/tmp",
            startTimeoutSeconds: Int = 60,
            tls: TLS? = nil,
            hostAuthentication: HostAuthentication = .trust
        ) {
            self.maxConnections = maxConnections
            self.maxLocksPerTransaction = maxLocksPerTransaction
            self.disableDurability = disableDurability
            self.settings = settings
            self.listenOnLoopback = listenOnLoopback
            self.unprivilegedUser = unprivilegedUser
            self.superuser = superuser
            self.searchPath = searchPath
            self.temporaryDirectoryParent = temporaryDirectoryParent
            self.startTimeoutSeconds = startTimeoutSeconds
            self.tls = tls
            self.hostAuthentication = hostAuthentication
        }

        /// The lines appended to `postgresql.conf`; pure, so it can be tested without a server.
        func configurationLines(port: Int, socketDirectory: String) throws -> [String] {
            var all: [(String, String)] = [
                ("port", "\(port)"),
                ("listen_addresses", listenOnLoopback ? "127.0.0.1" : ""),
                ("unix_socket_directories", socketDirectory),
                ("max_connections", "\(maxConnections)"),
                ("max_locks_per_transaction", "\(maxLocksPerTransaction)"),
            ]
            if disableDurability {
                all += [("fsync", "off"), ("synchronous_commit", "off"), ("full_page_writes", "off")]
            }
            if tls != nil {
                all += [("ssl", "on"), ("ssl_cert_file", TLS.certificateFile), ("ssl_key_file", TLS.keyFile)]
            }
            all += settings.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            return try all.map { name, value in
                guard !name.isEmpty, name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F || $0 == 0x2E }) else {
                    throw EphemeralPostgresError(code: .invalidSetting, message: "setting name '\(name)' may hold only lowercase letters, digits, '_' and '.'")
                }
                guard !value.utf8.contains(where: { $0 == 0 || $0 == 0x0A || $0 == 0x0D }) else {
                    throw EphemeralPostgresError(code: .invalidSetting, message: "the value of setting '\(name)' contains a line break or NUL")
                }
                let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "''")
                return "\(name) = '\(escaped)'"
            }
        }
    }
}

