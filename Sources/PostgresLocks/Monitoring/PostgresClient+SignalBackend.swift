import Logging
import PostgresNIO

extension PostgresClient {
    /// Cancels the statement running in a backend of the connected database
    /// (`pg_cancel_backend`), or ends its session (`pg_terminate_backend`, which rolls its
    /// transaction back and releases its locks).
    ///
    /// Only backends connected to the same database are signalled, never this client's own.
    ///
    /// - Returns: whether the signal was sent (false when no such backend is connected to this
    ///   database, or the role may not signal it).
    public func signalBackend(_ pid: Int32, terminate: Bool, logger: Logger) async throws -> Bool {
        let rows = try await checkedQuery("""
            SELECT CASE WHEN \(terminate) THEN pg_terminate_backend(pid) ELSE pg_cancel_backend(pid) END
            FROM pg_stat_activity WHERE pid = \(pid) AND datname = current_database() AND pid <> pg_backend_pid()
            """, logger: logger).rows
        return try rows.first?.decode(Bool.self) ?? false
    }
}
