import Logging
import PostgresNIO
import Tracing

extension TransactionRunner {
    /// Runs `body` in a transaction that tells the truth about how it ended: on a connection
    /// leased for it (a `PostgresClient`) or on this connection (a `PostgresConnection`).
    ///
    /// Unlike PostgresNIO's `withTransaction`, this helper:
    /// - reads the rows of every statement it runs (``Transaction/query(_:)``), so an
    ///   error raised by `SELECT some_function()` is thrown, not dropped;
    /// - throws ``PostgresLocksError/Code/transactionAborted`` when the body caught an error that
    ///   aborted the transaction, or when `COMMIT` answers `ROLLBACK`: nothing was committed;
    /// - throws ``PostgresLocksError/Code/connectionLost`` promptly when the server closes the
    ///   connection, instead of waiting forever; `connectionLost` means the connection was lost
    ///   before `COMMIT` was sent, so the server rolled the transaction back. A connection lost
    ///   while `COMMIT` was in flight throws ``PostgresLocksError/Code/commitOutcomeUnknown``:
    ///   it may have committed (``RetryPolicy/resolveCommitOutcome`` settles it);
    /// - throws ``PostgresLocksError/Code/nestedTransaction``, with nothing sent, on a connection
    ///   already inside a transaction opened outside this call;
    /// - maps SQLSTATEs to ``PostgresLocksError/Code``;
    /// - closes the connection when it cannot confirm the rollback, so an open transaction
    ///   never goes back into a pool.
    ///
    /// - Parameters:
    ///   - options: isolation level, access mode and transaction-local timeouts.
    ///   - logger: where statements are logged.
    ///   - isolation: the actor `body` runs on; the caller's (`#isolation`) by default.
    ///   - body: the work; run statements with the ``Transaction`` it receives. A lock wait in
    ///     it whose task is cancelled is ended through the client on a pooled connection, and
    ///     closes a connection the caller holds (see ``TransactionRunner``).
    /// - Returns: what `body` returned, once `COMMIT` has succeeded.
    @discardableResult
    public func withCheckedTransaction<Result>(
        options: TransactionOptions = .default,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        try await withCheckedTransaction(options: options, logger: logger) { transaction, _ in try await body(transaction) }
    }

    /// The checked transaction run as `attempt` (see ``TransactionAttempt``; with
    /// `readsTransactionID` an ``UnsettledCommit`` is thrown for the caller to settle). Each
    /// attempt is a `pglocks.transaction` span (see ``LibrarySpan``).
    func withCheckedTransaction<Result>(
        options: TransactionOptions,
        logger: Logger,
        attempt: TransactionAttempt = TransactionAttempt(),
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction, [PostgresRow]) async throws -> sending Result
    ) async throws -> sending Result {
        try await LibrarySpan.with("pglocks.transaction") { span in
            span.attributes["pglocks.transaction.attempt"] = attempt.number
            do {
                let value = try await transactionRoute.withConnection(logger: logger) { connection, client in
                    try await connection.runCheckedTransaction(options: options, logger: logger, attempt: attempt, canceller: client, body)
                }
                span.attributes["pglocks.transaction.outcome"] = "committed"
                return value
            } catch {
                span.attributes["pglocks.transaction.outcome"] = (error as? PostgresLocksError)?.code.name ?? "failed"
                throw error
            }
        }
    }
}
