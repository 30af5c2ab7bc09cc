import Logging

extension SessionLockPool {
    /// Takes the session lock `key`, runs `body` while holding it, and releases it.
    ///
    /// If the session carrying the lock dies while `body` runs (its connection closes, its
    /// heartbeat fails), `body` is cancelled and the call throws
    /// ``PostgresLocksError/Code/lockLost``; locks on the pool's other sessions go on.
    ///
    /// - Parameters:
    ///   - key: the lock's key.
    ///   - mode: exclusive (default) or shared.
    ///   - wait: `.forever` (default), `.immediately`, or `.timeout(d)`; see ``SessionLockPool``
    ///     for where a wait runs. Before the pool's first session is connected, a call waits for
    ///     it within its deadline (`.immediately`: within ``Configuration/responseTimeout``).
    ///   - body: the work; it is not given a connection (use your own client for its statements).
    /// - Throws: ``PostgresLocksError/Code/lockTimeout`` when the lock was not granted (`body` did
    ///   not run); ``PostgresLocksError/Code/connectionLost`` when no session of the pool is
    ///   connected, or the pool has stopped; `CancellationError` when the task was cancelled while waiting (nothing is left
    ///   held); `lockLost`; whatever `body` throws.
    @discardableResult
    public func withLock<Result: Sendable>(
        _ key: LockKey,
        mode: LockMode = .exclusive,
        wait: LockWait = .forever,
        _ body: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        let (hold, lossSignal) = try await take(key, mode: mode, wait: wait)
        let outcome = await runGuarded(body) {
            await lossSignal.wait()
            return lossSignal.isFired ? "its session ended" : nil
        } lost: { reason in
            PostgresLocksError(code: .lockLost, message: "the session carrying advisory lock \(key) ended (\(reason)); the guarded work was cancelled")
        }
        do {
            try await release(hold)
        } catch let error as PostgresLocksError where error.code == .lockLost {
            // Lost: the outcome says so if it happened while the body ran.
        } catch {
            if case .success = outcome { throw error }
        }
        return try outcome.get()
    }

    /// Takes the session lock `key` and returns it as a ``SessionLock`` that holds it until its
    /// ``SessionLock/release()``, for lifetimes that do not fit a closure. Nothing is cancelled
    /// when the lock is lost: check ``SessionLock/isLost`` where it matters (its `release()`
    /// then throws ``PostgresLocksError/Code/lockLost``).
    ///
    /// - Throws: as ``withLock(_:mode:wait:_:)`` before its body runs.
    public func acquire(_ key: LockKey, mode: LockMode = .exclusive, wait: LockWait = .forever) async throws -> SessionLock {
        let (hold, _) = try await take(key, mode: mode, wait: wait)
        return SessionLock(key: key, mode: mode, token: SessionLockToken(pool: self, hold: hold))
    }
}
