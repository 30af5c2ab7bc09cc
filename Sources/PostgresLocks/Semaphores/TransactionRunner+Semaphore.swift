import Logging
import PostgresNIO

extension TransactionRunner {
    /// Takes a permit of the semaphore `name` (at most `permits` holders across every process
    /// using the name), runs `body` in that transaction, and commits; the permit is released by
    /// the commit or rollback, so it cannot leak into a pool.
    ///
    /// ```swift
    /// // At most 4 thumbnail renders at once across the fleet.
    /// try await client.withSemaphore("thumbnails", permits: 4, logger: logger) { tx in
    ///     try await render(job, in: tx)
    /// }
    /// ```
    ///
    /// See ``AdvisorySemaphore`` for how permits are taken and waited for; waits and
    /// cancellation are those of ``withAdvisoryLock(_:mode:wait:options:logger:isolation:_:)``.
    ///
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` for an empty name or `permits` out
    ///   of range (nothing is sent); ``PostgresLocksError/Code/lockTimeout`` when no permit was
    ///   granted (`.immediately` or `.timeout`; `body` did not run).
    @discardableResult
    public func withSemaphore<Result>(
        _ name: String,
        permits: Int,
        wait: LockWait = .forever,
        options: TransactionOptions = .default,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        let semaphore = try AdvisorySemaphore(name, permits: permits)
        _ = try wait.lockTimeoutSetting()
        return try await withCheckedTransaction(options: options, logger: logger) { transaction in
            try await transaction.semaphorePermit(semaphore, wait: wait)
            return try await body(transaction)
        }
    }
}
