import Logging
import PostgresNIO

extension TransactionRunner {
    /// Takes a transaction-scoped advisory lock, runs `body` in that transaction, and commits;
    /// the lock is released by the commit or rollback, so it cannot leak into a pool.
    ///
    /// ```swift
    /// try await client.withAdvisoryLock(.hashed("invoice-series:acme"), logger: logger) { tx in
    ///     let next = try await tx.query("SELECT COALESCE(MAX(n), 0) + 1 FROM invoices WHERE series = 'acme'")
    ///     ...
    /// }
    /// ```
    ///
    /// Cancelling the task while it waits ends the server-side wait and leaves no lock held: on
    /// a `PostgresClient` through another pooled connection; on a `PostgresConnection` by
    /// closing it, since PostgresNIO sends no cancel request and there is no other connection
    /// to cancel from.
    ///
    /// - Throws: ``PostgresLocksError/Code/lockTimeout`` if `wait` is `.immediately` or
    ///   `.timeout` and the lock was not granted (`body` did not run); `CancellationError` if
    ///   the task was cancelled while waiting.
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
        _ = try wait.lockTimeoutSetting()  // a bad timeout is refused before anything is sent
        // The try-lock is chained right after BEGIN: one wait for both when the lock is free.
        let tryLock = Transaction.tryLockStatement(key, mode: mode)
        return try await withCheckedTransaction(options: options, logger: logger, attempt: TransactionAttempt(leading: tryLock)) { transaction, rows in
            try await transaction.advisoryLock(key, mode: mode, wait: wait, tried: try rows[0].boolFromText())
            return try await body(transaction)
        }
    }

    /// Takes many transaction-scoped advisory locks in one global order, all or nothing
    /// (see ``Transaction/advisoryLocks(_:wait:)``), then runs `body` in that transaction;
    /// waits and cancellation as in ``withAdvisoryLock(_:mode:wait:options:logger:isolation:_:)``.
    @discardableResult
    public func withAdvisoryLocks<Result>(
        _ requests: [LockRequest],
        wait: LockWait = .forever,
        options: TransactionOptions = .default,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        try await withCheckedTransaction(options: options, logger: logger) { transaction in
            try await transaction.advisoryLocks(requests, wait: wait)
            return try await body(transaction)
        }
    }
}
