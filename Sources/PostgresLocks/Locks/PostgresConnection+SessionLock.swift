import Logging
import PostgresNIO

extension PostgresConnection {
    /// Takes a session lock, recording the outcome in the lock metrics (unless the caller
    /// records it itself).
    ///
    /// - Throws: ``PostgresLocksError/Code/lockTimeout`` when it is not granted; whatever it
    ///   throws, the lock is not left held (a cancel or a timeout can race the grant).
    func takeSessionLock(_ key: LockKey, mode: LockMode, wait: LockWait, canceller: PostgresClient?, recordsMetrics: Bool = true, logger: Logger) async throws {
        let started = ContinuousClock.now
        func record(_ outcome: LockMetrics.Outcome) {
            guard recordsMetrics else { return }
            LockMetrics.record(outcome, scope: .session, mode: mode, keys: 1, waited: ContinuousClock.now - started, logger: logger, key: "\(key)")
        }
        let acquired: Bool
        do {
            acquired = try await acquireSessionLock(key, mode: mode, wait: wait, canceller: canceller, logger: logger)
        } catch {
            if (error as? PostgresLocksError)?.code == .lockTimeout {
                record(.notAcquired)
            } else if recordsMetrics {
                LockMetrics.failed(error, scope: .session, mode: mode, keys: 1, waited: ContinuousClock.now - started, key: "\(key)")
            }
            await releaseSessionLock(key, mode: mode, expectHeld: false, logger: logger)
            throw error
        }
        record(acquired ? .acquired(contended: false) : .notAcquired)
        guard acquired else {
            throw PostgresLocksError(code: .lockTimeout, message: "advisory lock \(key) is held by another session")
        }
    }

    /// Takes a session lock; returns false when `.immediately` finds it taken.
    func acquireSessionLock(_ key: LockKey, mode: LockMode, wait: LockWait, canceller: PostgresClient?, logger: Logger) async throws -> Bool {
        switch wait {
        case .immediately:
            let function = AdvisoryLockSQL.lockFunction(scope: .session, mode: mode, try: true)
            return try await runPrepared(AdvisoryLockSQL.call(function, key: key), outsideTransaction: true, logger: logger)[0].boolFromText()
        case .forever:
            let function = AdvisoryLockSQL.lockFunction(scope: .session, mode: mode, try: false)
            _ = try await runCancellableLockStatement(AdvisoryLockSQL.call(function, key: key), canceller: canceller, logger: logger)
            return true
        case .timeout(let duration):
            // The wait runs inside a transaction so `lock_timeout` can be transaction-local;
            // a session lock survives the COMMIT.
            let function = AdvisoryLockSQL.lockFunction(scope: .session, mode: mode, try: false)
            do {
                try await runCheckedTransaction(options: .init(lockTimeout: duration), logger: logger, canceller: canceller) { transaction, _ in
                    try await transaction.runLockWait(AdvisoryLockSQL.call(function, key: key))
                }
                return true
            } catch let error as PostgresLocksError where error.code == .lockNotAvailable {
                // The timeout can fire just as the lock is granted (DistributedLock #147): the
                // session then holds it even though the statement failed. Ask pg_locks.
                let held = try await runStatement(AdvisoryLockSQL.isHeld(key, mode: mode), logger: logger).rows[0].decode(Int64.self)
                if held > 0 { return true }
                throw PostgresLocksError(code: .lockTimeout, message: "advisory lock \(key) was not granted within \(duration)", sqlState: error.sqlState, underlying: error)
            }
        }
    }

    /// Releases a session lock; if that cannot be confirmed on a live connection, closes the
    /// connection so the lock cannot outlive this lease.
    func releaseSessionLock(_ key: LockKey, mode: LockMode, expectHeld: Bool, logger: Logger) async {
        guard !isClosed else { return }
        do {
            let function = AdvisoryLockSQL.unlockFunction(mode: mode)
            let released = try await runPrepared(AdvisoryLockSQL.call(function, key: key), outsideTransaction: true, logger: logger)[0].boolFromText()
            if released == expectHeld || !expectHeld { return }
            logger.warning("session lock was not held at release; closing the connection", metadata: ["key": "\(key)"])
        } catch {
            logger.warning("could not confirm the release of a session lock; closing the connection", metadata: ["key": "\(key)", "error": .error(error)])
        }
        await closeDiscardingErrors()
    }

    /// Runs `body` while watching the session: if the connection closes (or a heartbeat
    /// fails), `body` is cancelled and the result is ``PostgresLocksError/Code/lockLost``.
    func runGuardingSession<Result: Sendable>(
        key: LockKey,
        mode: LockMode,
        heartbeat: Duration?,
        logger: Logger,
        _ body: @escaping @Sendable () async throws -> Result
    ) async -> Swift.Result<Result, any Error> {
        await runGuarded(body) {
            // A heartbeat that gets no answer within another interval counts as a lost
            // session too: the lock can no longer be vouched for.
            await self.watchSession(
                every: heartbeat, answerLimit: (heartbeat ?? .seconds(5)) * 2,
                holdCount: AdvisoryLockSQL.isHeld(key, mode: mode), logger: logger
            )
        } lost: { reason in
            await self.closeDiscardingErrors()
            LockMetrics.lost(logger: logger)
            logger.error("session advisory lock lost; cancelling the guarded work", metadata: ["key": "\(key)", "reason": "\(reason)"])
            return PostgresLocksError(code: .lockLost, message: "the session holding advisory lock \(key) ended (\(reason)); the guarded work was cancelled")
        }
    }
}

/// Runs `body` beside `watch`, which returns why the lock guarding `body` is gone (or nil once
/// it is cancelled): when it does first, `body` is cancelled and the result is the error `lost`
/// makes of the reason (`lost` runs only then). A `body` that finishes first cancels the watch.
func runGuarded<Result: Sendable>(
    _ body: @escaping @Sendable () async throws -> Result,
    watch: @escaping @Sendable () async -> String?,
    lost: (String) async -> PostgresLocksError
) async -> Swift.Result<Result, any Error> {
    await withTaskGroup(of: SessionEvent<Result>.self) { group in
        group.addTask {
            do { return .finished(.success(try await body())) } catch { return .finished(.failure(error)) }
        }
        group.addTask {
            await watch().map { .lost($0) } ?? .watchEnded
        }
        var outcome: Swift.Result<Result, any Error>?
        while let event = await group.next() {
            switch event {
            case .finished(let result):
                if outcome == nil { outcome = result }
                group.cancelAll()
            case .lost(let reason):
                if outcome == nil { outcome = .failure(await lost(reason)) }
                group.cancelAll()
            case .watchEnded:
                break
            }
        }
        return outcome!
    }
}

/// What ends the watch over a session lock's body.
enum SessionEvent<Value: Sendable>: Sendable {
    case finished(Swift.Result<Value, any Error>)
    case lost(String)
    case watchEnded
}
