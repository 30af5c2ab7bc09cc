import Logging
import PostgresNIO

extension PostgresConnection {
    /// Takes a transaction-scoped advisory lock on this connection, runs `body` in that
    /// transaction and commits; see ``PostgresNIO/PostgresClient/withAdvisoryLock(_:mode:wait:options:logger:isolation:_:)``.
    ///
    /// Cancelling the task while it waits for the lock closes this connection: PostgresNIO
    /// sends no cancel request, and a dedicated connection has no other connection to cancel
    /// the server-side wait from. (The client's form cancels through another pooled connection.)
    ///
    /// - Throws: ``PostgresLocksError/Code/lockTimeout`` when the lock is not granted
    ///   (`.immediately` or `.timeout`); `body` did not run.
    @discardableResult
    public func withAdvisoryLock<Result>(
        _ key: LockKey,
        mode: LockMode = .exclusive,
        wait: LockWait = .forever,
        options: TransactionOptions = .default,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        try await withAdvisoryLocks([LockRequest(key, mode: mode)], wait: wait, options: options, canceller: nil, logger: logger, body)
    }

    /// Takes many transaction-scoped advisory locks on this connection in one global order,
    /// all or nothing, then runs `body` in that transaction; cancellation as in
    /// ``withAdvisoryLock(_:mode:wait:options:logger:isolation:_:)``.
    @discardableResult
    public func withAdvisoryLocks<Result>(
        _ requests: [LockRequest],
        wait: LockWait = .forever,
        options: TransactionOptions = .default,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        try await withAdvisoryLocks(requests, wait: wait, options: options, canceller: nil, logger: logger, body)
    }

    /// The locked transaction; waits are cancelled through `canceller` when given.
    func withAdvisoryLocks<Result>(
        _ requests: [LockRequest],
        wait: LockWait,
        options: TransactionOptions,
        canceller: PostgresClient?,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        try await withCheckedTransaction(options: options, logger: logger, attempt: 1, canceller: canceller) { transaction in
            try await transaction.advisoryLocks(requests, wait: wait)
            return try await body(transaction)
        }
    }
}
