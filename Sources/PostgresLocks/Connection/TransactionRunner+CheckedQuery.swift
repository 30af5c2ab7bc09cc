import Logging
import PostgresNIO

extension TransactionRunner {
    /// Runs one statement outside any transaction helper (autocommit), the safe way: every row
    /// is read (so an error raised while producing rows is thrown, not dropped), a closed
    /// connection throws ``PostgresLocksError/Code/connectionLost`` at once instead of waiting
    /// forever, and errors are mapped to ``PostgresLocksError``.
    ///
    /// The call returns once the server has said the statement is done (its `ReadyForQuery`),
    /// not at its result: outside a transaction block the server commits after sending the
    /// result, and a backend ended in between rolls the statement back. A write that throws
    /// ``PostgresLocksError/Code/connectionLost`` may or may not have committed (the connection
    /// can also drop after the commit and before the reply); run it in a checked transaction
    /// with ``RetryPolicy/resolvingCommitOutcome`` when that matters.
    @discardableResult
    public func checkedQuery(_ query: PostgresQuery, logger: Logger) async throws -> PostgresQueryResult {
        try await transactionRoute.withConnection(logger: logger) { connection, _ in
            try await connection.runStatement(query, logger: logger)
        }
    }
}
