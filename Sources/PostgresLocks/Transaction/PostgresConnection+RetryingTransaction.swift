import Logging
import Metrics
import PostgresNIO

extension PostgresConnection {
    /// Runs `body` in a checked transaction on this connection and re-runs the whole
    /// transaction on a deadlock or serialization failure, following `policy`; see
    /// ``PostgresNIO/PostgresClient/withRetryingTransaction(retry:options:logger:isolation:_:)``.
    ///
    /// A lost connection is never re-run here (the connection is gone). With
    /// ``RetryPolicy/resolveCommitOutcome``, a `COMMIT` lost in flight throws
    /// ``PostgresLocksError/Code/commitOutcomeUnknown`` carrying the transaction id, which
    /// ``PostgresNIO/PostgresClient/transactionStatus(_:logger:)`` can settle on another connection.
    @discardableResult
    public func withRetryingTransaction<Result>(
        retry policy: RetryPolicy = .default,
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
                    SendingBox(try await body(transaction))
                }
            } catch let unsettled as UnsettledCommit<SendingBox<Result>> {
                throw unsettled.error
            }
        }
        return box.value
    }
}
