import Logging
import PostgresNIO

extension ConnectionSettings {
    /// Asks whatever answers at these settings' host and port whether it is a pooling proxy
    /// that names itself: PgBouncer serves an admin console as the database `pgbouncer`
    /// (`SHOW VERSION`), and refuses users who may not use it with its own message.
    ///
    /// Returns e.g. `"PgBouncer 1.18.0"`, `"PgBouncer"` when it answered without its version
    /// (its console speaks only the simple query protocol, which PostgresNIO 1.33 does not
    /// send), or nil when a PostgreSQL server answered (no such database) or nothing could be told.
    public func identifyPooler(logger: Logger) async -> String? {
        var console = self
        console.database = "pgbouncer"
        console.applicationName = "postgres-locks pooler check"
        guard let configuration = try? console.makeConnectionConfiguration() else { return nil }
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: Int.random(in: 1...Int(Int32.max)), logger: logger)
        } catch {
            logger.debug("pooler check: connecting to the console failed", metadata: ["error": .error(error)])
            return Self.poolerName(fromRefusal: error)
        }
        let name: String?
        do {
            let rows = try await connection.simpleQuery("SHOW VERSION").get()
            let text = rows.first.flatMap { try? $0.decode(String.self) }
            name = text.map { $0.lowercased().contains("pgbouncer") ? $0 : nil } ?? "PgBouncer"
        } catch {
            logger.debug("pooler check: SHOW VERSION failed", metadata: ["error": .error(error)])
            name = Self.poolerName(fromRefusal: error)
        }
        try? await connection.close()
        return name
    }

    /// Whether a refusal came from a pooler rather than a server. Pure.
    static func poolerName(fromRefusal error: any Error) -> String? {
        let text: String
        if let psql = error as? PSQLError, let message = psql.serverInfo?[.message] {
            if psql.serverInfo?[.sqlState] == "3D000" { return nil }  // a server: no such database
            text = message
        } else {
            text = String(reflecting: error)
        }
        let lowered = text.lowercased()
        // PgBouncer's console answers an extended-protocol query with "extended query protocol
        // not supported by admin console", and a user it does not admit with "not allowed".
        if lowered.contains("pgbouncer") || lowered.contains("admin console") || lowered.contains("not allowed") { return "PgBouncer" }
        return nil
    }
}
