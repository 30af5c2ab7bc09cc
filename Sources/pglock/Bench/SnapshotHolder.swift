import Logging
import PostgresLocks
import PostgresNIO

/// A session that holds one snapshot open (a `REPEATABLE READ` transaction with a
/// transaction id), as a forgotten report query or a long backup would: vacuum can remove no
/// row version that became dead after it started.
struct SnapshotHolder {
    let connection: PostgresConnection
    let logger: Logger

    static func open(settings: ConnectionSettings, logger: Logger) async throws -> SnapshotHolder {
        var settings = settings
        settings.applicationName = "pglock bench snapshot holder"
        let connection = try await PostgresConnection.connect(configuration: try settings.makeConnectionConfiguration(), id: 0x5A95, logger: logger)
        try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ", logger: logger)
        try await connection.query("SELECT txid_current()", logger: logger)
        return SnapshotHolder(connection: connection, logger: logger)
    }

    func close() async throws {
        try await connection.query("COMMIT", logger: logger)
        try await connection.close()
    }
}
