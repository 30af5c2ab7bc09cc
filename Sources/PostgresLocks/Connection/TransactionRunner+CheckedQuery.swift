import Logging
import PostgresNIO

extension TransactionRunner {
    /// Runs one statement outside any transaction helper (autocommit), the safe way: every row
    /// is read (so an error raised while producing rows is thrown, not dropped), a closed
    /// connection throws ``PostgresLocksError/Code/connectionLost`` at once instead of waiting
    /// forever, and errors are mapped to ``PostgresLocksError``.
    @discardableResult
    public func checkedQuery(_ query: PostgresQuery, logger: Logger) async throws -> PostgresQueryResult {
        try await transactionRoute.withConnection(logger: logger) { connection, _ in
            try await connection.runStatement(query, logger: logger)
        }
    }
}
