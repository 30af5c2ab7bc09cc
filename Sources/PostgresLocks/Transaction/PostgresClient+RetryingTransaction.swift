import Logging
import Metrics
import PostgresNIO

extension PostgresClient {
    /// Runs `body` in a checked transaction and re-runs the **whole** transaction when
    /// PostgreSQL aborts it with a deadlock (40P01) or a serialization failure (40001), and
    /// optionally on lock-not-available (55P03), following `policy`.
    ///
    /// Each attempt gets a fresh transaction (``Transaction/attempt`` tells which one it is),
    /// so the body must be safe to run again: it must not have effects outside the database
    /// that a rolled-back attempt would leave behind. Any other error is thrown at once; when
    /// attempts run out, the last error is thrown.
    ///
    /// A lost connection is re-run on a new connection only when the policy says so
    /// (``RetryPolicy/retryOnConnectionLoss``) and nothing was committed; a `COMMIT` lost in
    /// flight is settled with `pg_xact_status` when ``RetryPolicy/resolveCommitOutcome`` is set
    /// (committed: its result is returned, the body is not run again), and otherwise throws
    /// ``PostgresLocksError/Code/commitOutcomeUnknown``. See <doc:Transactions>.
    ///
    /// ```swift
    /// try await client.withRetryingTransaction(logger: logger) { tx in
    ///     try await tx.query("UPDATE accounts SET balance = balance - 10 WHERE id = \(from)")
    ///     try await tx.query("UPDATE accounts SET balance = balance + 10 WHERE id = \(to)")
    /// }
    /// ```
    public func withRetryingTransaction<Result>(
        policy: RetryPolicy = .default,
        options: TransactionOptions = .default,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> Result
    ) async throws -> sending Result {
        try policy.validate()
        let box = try await retryWholeTransaction(policy: policy, reconnects: true, logger: logger) { attempt in
            guard policy.resolveCommitOutcome else {
                return try await self.withCheckedTransaction(options: options, logger: logger, attempt: attempt) { transaction in
                    Box(try await body(transaction))
                }
            }
            do {
                return try await self.withCheckedTransaction(options: options, logger: logger, attempt: attempt, readsTransactionID: true) { transaction in
                    Box(try await body(transaction))
                }
            } catch let unsettled as UnsettledCommit<Box<Result>> {
                // Committed: the result. Aborted: connectionLost, re-run below if the policy allows.
                return try await self.settle(unsettled, within: policy.commitOutcomeWait, logger: logger)
            }
        }
        return box.value
    }
}

extension PostgresConnection {
    /// Runs `body` in a checked transaction on this connection and re-runs the whole
    /// transaction on a deadlock or serialization failure, following `policy`; see
    /// ``PostgresNIO/PostgresClient/withRetryingTransaction(policy:options:logger:isolation:_:)``.
    ///
    /// A lost connection is never re-run here (the connection is gone). With
    /// ``RetryPolicy/resolveCommitOutcome``, a `COMMIT` lost in flight throws
    /// ``PostgresLocksError/Code/commitOutcomeUnknown`` carrying the transaction id, which
    /// ``PostgresNIO/PostgresClient/transactionStatus(_:logger:)`` can settle on another connection.
    public func withRetryingTransaction<Result>(
        policy: RetryPolicy = .default,
        options: TransactionOptions = .default,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> Result
    ) async throws -> sending Result {
        try policy.validate()
        let box = try await retryWholeTransaction(policy: policy, reconnects: false, logger: logger) { attempt in
            do {
                return try await self.withCheckedTransaction(
                    options: options, logger: logger, attempt: attempt, readsTransactionID: policy.resolveCommitOutcome
                ) { transaction in
                    Box(try await body(transaction))
                }
            } catch let unsettled as UnsettledCommit<Box<Result>> {
                throw unsettled.error
            }
        }
        return box.value
    }
}

/// The least pause before re-running a transaction whose connection was lost.
let connectionLossPause: Duration = .milliseconds(50)

/// The one retry loop: runs `attemptOnce(attempt)` and, when it fails with an error `policy`
/// retries, waits the policy's backoff and runs it again with the next attempt number. A lost
/// connection is retried only where each attempt gets a new connection (`reconnects`).
func retryWholeTransaction<Value>(
    policy: RetryPolicy,
    reconnects: Bool,
    logger: Logger,
    isolation: isolated (any Actor)? = #isolation,
    _ attemptOnce: (Int) async throws -> Value
) async throws -> Value {
    var generator = SystemRandomNumberGenerator()
    var attempt = 1
    while true {
        do {
            return try await attemptOnce(attempt)
        } catch {
            guard policy.shouldRetry(error, afterAttempt: attempt) else { throw error }
            let code = (error as? PostgresLocksError)?.code ?? .client
            guard reconnects || code != .connectionLost else { throw error }
            var delay = policy.backoff(afterAttempt: attempt, using: &generator)
            if code == .connectionLost {
                // The pool notices a closed connection on its event loop: give it the moment it
                // needs, or the next attempts lease the same dead connection again.
                delay = max(delay, connectionLossPause)
            }
            Counter(label: "pglocks_transaction_retries_total", dimensions: [("reason", code.name)]).increment()
            logger.debug("retrying transaction", metadata: [
                "attempt": "\(attempt)", "reason": "\(code.name)", "backoff_ms": "\(RetryPolicy.nanoseconds(delay) / 1_000_000)",
            ])
            try await Task.sleep(for: delay)
            attempt += 1
        }
    }
}

/// Carries a non-`Sendable` value out of a `sending` closure.
private final class Box<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
