import Logging
import PostgresNIO

extension TransactionRunner {
    /// Runs `body` in a checked transaction and re-runs the **whole** transaction when
    /// PostgreSQL aborts it with a deadlock (40P01) or a serialization failure (40001), and
    /// optionally on lock-not-available (55P03), following `policy`.
    ///
    /// Each attempt gets a fresh transaction (``Transaction/attempt`` tells which one it is),
    /// so the body must be safe to run again: it must not have effects outside the database
    /// that a rolled-back attempt would leave behind. Any other error is thrown at once; when
    /// attempts run out, the last error is thrown.
    ///
    /// A lost connection is re-run on a new connection only on a `PostgresClient`, when the
    /// policy says so (``RetryPolicy/retryOnConnectionLoss``) and nothing was committed. A
    /// `COMMIT` lost in flight is settled with `pg_xact_status` when
    /// ``RetryPolicy/resolveCommitOutcome`` is set (committed: its result is returned, the body
    /// is not run again), and otherwise throws ``PostgresLocksError/Code/commitOutcomeUnknown``.
    /// On a `PostgresConnection` (gone with its connection) that error carries the transaction
    /// id, which ``transactionStatus(_:logger:)`` can settle on another connection. See
    /// <doc:CheckedAndRetryingTransactions>.
    ///
    /// ```swift
    /// try await client.withRetryingTransaction(logger: logger) { tx in
    ///     try await tx.query("UPDATE accounts SET balance = balance - 10 WHERE id = \(from)")
    ///     try await tx.query("UPDATE accounts SET balance = balance + 10 WHERE id = \(to)")
    /// }
    /// ```
    @discardableResult
    public func withRetryingTransaction<Result>(
        retry policy: RetryPolicy = .default,
        options: TransactionOptions = .default,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> Result
    ) async throws -> sending Result {
        try policy.validate()
        let client = transactionRoute.client
        let box = try await retryWholeTransaction(policy: policy, reconnects: client != nil, logger: logger) { attempt in
            do {
                // Only with resolveCommitOutcome is the transaction id read, and only then can a
                // lost COMMIT come back as an UnsettledCommit to settle.
                return try await self.withCheckedTransaction(
                    options: options, logger: logger, attempt: TransactionAttempt(number: attempt, readsTransactionID: policy.resolveCommitOutcome)
                ) { transaction, _ in
                    SendingBox(try await body(transaction))
                }
            } catch let unsettled as UnsettledCommit<SendingBox<Result>> {
                // Committed: the result. Aborted: connectionLost, re-run if the policy allows.
                // Without a pool there is no other connection to ask.
                guard let client else { throw unsettled.error }
                return try await client.settle(unsettled, within: policy.commitOutcomeWait, logger: logger)
            }
        }
        return box.value
    }
}
