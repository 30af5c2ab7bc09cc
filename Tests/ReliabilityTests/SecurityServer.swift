import EphemeralPostgres
import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO

/// A throwaway server for the security tests, shared by them: TLS with a self-signed
/// certificate, password (SCRAM) authentication over TCP, and every statement logged
/// (`log_statement = all`) so tests can read the SQL the library sent.
struct SecurityServer: Sendable {
    let server: EphemeralPostgres
    /// A role that logs in over TCP with ``password``.
    let user = "app_user"
    let password: String

    static func shared() async throws -> SecurityServer { try await holder.get() }
    private static let holder = Holder()

    /// A URL to the `app` database (owned by ``user``) over TCP as ``user``.
    func url(host: String = "127.0.0.1", password: String? = nil, query: String) -> String {
        "postgresql://\(user):\(password ?? self.password)@\(host):\(server.port)/app?\(query)"
    }

    private actor Holder {
        private var task: Task<SecurityServer, any Error>?

        func get() async throws -> SecurityServer {
            if let task { return try await task.value }
            let task = Task { () throws -> SecurityServer in
                let server = try await EphemeralPostgres.start(.init(
                    disableDurability: true,
                    settings: ["log_statement": "all", "log_min_error_statement": "error"],
                    tls: .selfSigned,
                    hostAuthentication: .scramSHA256
                ), logger: TestDatabase.logger)
                let password = "pw-" + UUID().uuidString
                // The superuser comes in over the Unix socket (trusted). The password must not be
                // written to the server log either, so this session does not log its statement.
                try await TestDatabase.withConnection(settings: try ConnectionSettings(url: server.url())) { connection in
                    _ = try await connection.query("SET log_statement = 'none'", logger: TestDatabase.logger).collect()
                    // A utility statement cannot take a bound password; this one is made of a UUID.
                    _ = try await connection.query(PostgresQuery(unsafeSQL: "CREATE ROLE app_user LOGIN PASSWORD '\(password)'"), logger: TestDatabase.logger).collect()
                    _ = try await connection.query("GRANT pg_read_all_stats TO app_user", logger: TestDatabase.logger).collect()
                    // Its own database, so it can create tables (PostgreSQL 15 lets only owners create in `public`).
                    _ = try await connection.query("CREATE DATABASE app OWNER app_user", logger: TestDatabase.logger).collect()
                }
                return SecurityServer(server: server, password: password)
            }
            self.task = task
            return try await task.value
        }
    }
}

/// Runs `body` with a running client made from `settings`.
func withClient<T: Sendable>(_ settings: ConnectionSettings, backgroundLogger: Logger = TestDatabase.backgroundLogger, _ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
    var configuration = try settings.makeClientConfiguration()
    configuration.options.maximumConnections = 4
    configuration.options.minimumConnections = 0  // opened on demand, below the default fixed pool
    let client = PostgresClient(configuration: configuration, backgroundLogger: backgroundLogger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await client.run() }
        defer { group.cancelAll() }
        return try await body(client)
    }
}

