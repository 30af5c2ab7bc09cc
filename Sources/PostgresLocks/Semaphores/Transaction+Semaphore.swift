import Logging
import PostgresNIO

extension Transaction {
    /// Takes a permit of `semaphore` for this transaction: it is released when the transaction
    /// ends (commit or rollback). See ``AdvisorySemaphore`` for how permits are taken and
    /// waited for. Take one permit of a semaphore per transaction: a session that asks again
    /// can get the permit it holds again (advisory locks are re-entrant within a session).
    ///
    /// - Parameters:
    ///   - semaphore: the semaphore.
    ///   - wait: `.forever` (default), `.immediately` (a permit only if one is free now), or
    ///     `.timeout(d)` for the wait on the server.
    /// - Returns: the index of the permit taken (from 0).
    /// - Throws: ``PostgresLocksError/Code/lockTimeout`` when no permit was granted: at once for
    ///   `.immediately` when all are held, or when a `.timeout` expires (the transaction stays
    ///   usable); `CancellationError` when the task is cancelled while waiting (the server-side
    ///   wait is ended and no permit is held); other ``PostgresLocksError``s such as `deadlock`.
    @discardableResult
    public func semaphorePermit(_ semaphore: AdvisorySemaphore, wait: LockWait = .forever) async throws -> Int {
        _ = try wait.lockTimeoutSetting()
        return try await semaphore.takePermit(scope: .transaction, wait: wait, logger: logger) { statement in
            try await queryPrepared(statement)
        } waitFor: { key in
            try await advisoryLock(key, wait: wait)
        }
    }
}
