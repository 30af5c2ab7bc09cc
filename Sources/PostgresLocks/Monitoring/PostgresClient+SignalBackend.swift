import Logging
import PostgresNIO

extension PostgresClient {
    /// Cancels the statement running in a backend of the connected database
    /// (`pg_cancel_backend`), or ends its session (`pg_terminate_backend`, which rolls its
    /// transaction back and releases its locks).
    ///
    /// Only backends connected to the same database are signalled, never the session sending
    /// the signal; with `onlyIfBlocking`, only a backend that some session of this database is
    /// waiting behind (`pg_blocking_pids` of each session `pg_locks` shows waiting; not its
    /// wait event, which a waiter leaves for a moment whenever a signal wakes it).
    ///
    /// - Returns: whether the signal was sent: false when no such backend is there (or it
    ///   blocks no one, with `onlyIfBlocking`), or the role may not signal it (SQLSTATE 42501).
    public func signalBackend(_ pid: Int32, terminate: Bool, onlyIfBlocking: Bool = false, logger: Logger) async throws -> Bool {
        do {
            let rows = try await checkedQuery("""
                SELECT CASE WHEN \(terminate) THEN pg_terminate_backend(pid) ELSE pg_cancel_backend(pid) END
                FROM pg_stat_activity
                WHERE pid = \(pid) AND datname = current_database() AND pid <> pg_backend_pid()
                  AND (NOT \(onlyIfBlocking) OR EXISTS (
                      SELECT 1 FROM pg_stat_activity w
                      WHERE w.datname = current_database()
                        AND w.pid IN (SELECT l.pid FROM pg_locks l WHERE NOT l.granted)
                        AND \(pid) = ANY(pg_blocking_pids(w.pid))
                  ))
                """, logger: logger).rows
            return try rows.first?.decode(Bool.self) ?? false
        } catch {
            if let wrapped = PostgresLocksError.wrap(error) as? PostgresLocksError, wrapped.sqlState == "42501" { return false }
            throw error
        }
    }
}
