import Logging
import PostgresNIO

extension PostgresConnection {
    /// Runs one statement outside any transaction helper, the safe way: every row is read (so
    /// an error raised while producing rows is thrown, not dropped), a closed connection
    /// throws ``PostgresLocksError/Code/connectionLost`` at once instead of waiting forever,
    /// and errors are mapped to ``PostgresLocksError``.
    @discardableResult
    public func checkedQuery(_ query: PostgresQuery, logger: Logger) async throws -> PostgresQueryResult {
        try await runStatement(query, logger: logger)
    }
}

extension PostgresClient {
    /// Leases a connection and runs one statement on it with
    /// ``PostgresNIO/PostgresConnection/checkedQuery(_:logger:)`` (autocommit).
    @discardableResult
    public func checkedQuery(_ query: PostgresQuery, logger: Logger) async throws -> PostgresQueryResult {
        try await withLibraryConnection(logger: logger) { connection in
            try await connection.runStatement(query, logger: logger)
        }
    }
}
