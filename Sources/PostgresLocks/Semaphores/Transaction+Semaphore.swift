import Logging
import PostgresNIO

extension Transaction {
    /// Takes a permit of `semaphore` for this transaction: it is released when the transaction
    /// ends (commit or rollback). See ``AdvisorySemaphore`` for how permits are taken and
    /// waited for.
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
        let order = semaphore.tryOrder(startingAt: Int.random(in: 0..<semaphore.permits))
        if let row = try await queryPrepared(AdvisorySemaphore.tryPermitsStatement(order, scope: .transaction)).first {
            let index = try AdvisorySemaphore.permitIndex(row)
            LockMetrics.record(.acquired(contended: false), scope: .transaction, mode: .exclusive, keys: 1, waited: nil, logger: logger, key: "\(semaphore)")
            return index
        }
        guard wait != .immediately else {
            LockMetrics.record(.notAcquired, scope: .transaction, mode: .exclusive, keys: 1, waited: nil, logger: logger, key: "\(semaphore)")
            throw PostgresLocksError(code: .lockTimeout, message: "all \(semaphore.permits) permits of \(semaphore) are held")
        }
        let index = try AdvisorySemaphore.permitIndex(try await queryPrepared(AdvisorySemaphore.shortestQueueStatement(order))[0])
        do {
            try await advisoryLock(semaphore.permitKey(index), wait: wait)
        } catch let error as PostgresLocksError where error.code == .lockTimeout {
            throw PostgresLocksError(code: .lockTimeout, message: "no permit of \(semaphore) was granted within the wait", underlying: error)
        }
        return index
    }
}
