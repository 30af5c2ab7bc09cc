import Logging
import PostgresNIO

extension PostgresConnection {
    /// Takes a transaction-scoped advisory lock on this connection, runs `body` in that
    /// transaction and commits; see ``PostgresNIO/PostgresClient/withAdvisoryLock(_:mode:wait:options:logger:isolation:_:)``.
    ///
    /// - Parameter canceller: a client used to cancel the server-side wait if the task is
    ///   cancelled (PostgresNIO does not send cancel requests).
    public func withAdvisoryLock<Result>(
        _ key: LockKey,
        mode: LockMode = .exclusive,
        wait: LockWait = .forever,
        options: TransactionOptions = .default,
        canceller: PostgresClient,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        try await withAdvisoryLocks([LockRequest(key, mode: mode)], wait: wait, options: options, canceller: canceller, logger: logger, body)
    }

    /// Takes many transaction-scoped advisory locks on this connection in one global order,
    /// all or nothing, then runs `body` in that transaction.
    public func withAdvisoryLocks<Result>(
        _ requests: [LockRequest],
        wait: LockWait = .forever,
        options: TransactionOptions = .default,
        canceller: PostgresClient,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        try await withCheckedTransaction(options: options, logger: logger) { transaction in
            guard try await transaction.advisoryLocks(requests, wait: wait, canceller: canceller) else {
                throw PostgresLocksError(code: .lockTimeout, message: "advisory lock not available: held by another session")
            }
            return try await body(transaction)
        }
    }
}
