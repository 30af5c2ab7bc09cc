import Logging
import PostgresNIO

extension PostgresClient {
    /// Takes a transaction-scoped advisory lock, runs `body` in that transaction, and commits;
    /// the lock is released by the commit or rollback, so it cannot leak into the pool.
    ///
    /// ```swift
    /// try await client.withAdvisoryLock(.hashed("invoice-series:acme"), logger: logger) { tx in
    ///     let next = try await tx.query("SELECT COALESCE(MAX(n), 0) + 1 FROM invoices WHERE series = 'acme'")
    ///     ...
    /// }
    /// ```
    ///
    /// - Throws: ``PostgresLocksError/Code/lockTimeout`` if `wait` is `.immediately` or
    ///   `.timeout` and the lock was not granted (`body` did not run); `CancellationError` if
    ///   the task was cancelled while waiting (the server-side wait is cancelled too).
    public func withAdvisoryLock<Result>(
        _ key: LockKey,
        mode: LockMode = .exclusive,
        wait: LockWait = .forever,
        options: TransactionOptions = .default,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        try await withAdvisoryLocks([LockRequest(key, mode: mode)], wait: wait, options: options, logger: logger, body)
    }

    /// Takes many transaction-scoped advisory locks in one global order, all or nothing
    /// (see ``Transaction/advisoryLocks(_:wait:canceller:)``), then runs `body` in that transaction.
    public func withAdvisoryLocks<Result>(
        _ requests: [LockRequest],
        wait: LockWait = .forever,
        options: TransactionOptions = .default,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        try await withLibraryConnection(logger: logger) { connection in
            try await connection.withAdvisoryLocks(requests, wait: wait, options: options, canceller: self, logger: logger, body)
        }
    }

    /// Takes a **session** advisory lock on a leased connection, runs `body` outside any
    /// transaction (so the lock can span many transactions and long work), and releases it.
    ///
    /// What this guarantees:
    /// - **No leak into the pool**: the lock is released before the connection goes back; if
    ///   the release cannot be confirmed, the connection is closed instead (the server then
    ///   drops the lock with the session).
    /// - **Lost lock**: if the connection dies while `body` runs (backend terminated, server
    ///   restarted, network gone, noticed by a `SELECT 1` every `heartbeat`), `body` is
    ///   cancelled and the call throws ``PostgresLocksError/Code/lockLost``.
    /// - **Cancellation** while waiting ends the server-side wait and leaves no lock held.
    ///
    /// - **Never without the lock behind a pooler**: behind a transaction-pooling proxy (found
    ///   by ``PostgresNIO/PostgresClient/connectionPooling(logger:)`` on the client's first call)
    ///   the call throws ``PostgresLocksError/Code/transactionPooling`` before taking anything,
    ///   and each heartbeat checks that the connection's server process still holds the lock.
    ///
    /// `body` must not run statements on the lock's connection (it is not given one); use the
    /// client for its own work.
    public func withSessionAdvisoryLock<Result: Sendable>(
        _ key: LockKey,
        mode: LockMode = .exclusive,
        wait: LockWait = .forever,
        heartbeat: Duration? = .seconds(5),
        logger: Logger,
        _ body: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        if let heartbeat, heartbeat <= .zero {
            throw PostgresLocksError.invalidArgument("heartbeat must be positive; found \(heartbeat)")
        }
        _ = try wait.lockTimeoutSetting()
        let verifyHolder = try await requireServerSession(for: "a session advisory lock", logger: logger)
        do {
            return try await withLibraryConnection(logger: logger) { connection in
                let acquired: Bool
                let started = ContinuousClock.now
                do {
                    acquired = try await connection.acquireSessionLock(key, mode: mode, wait: wait, canceller: self, logger: logger)
                    LockMetrics.record(acquired ? .acquired(contended: false) : .notAcquired, scope: .session, mode: mode, keys: 1,
                                       waited: ContinuousClock.now - started, logger: logger, key: "\(key)")
                } catch let error as PostgresLocksError where error.code == .lockTimeout {
                    LockMetrics.record(.notAcquired, scope: .session, mode: mode, keys: 1, waited: ContinuousClock.now - started, logger: logger, key: "\(key)")
                    await connection.releaseSessionLock(key, mode: mode, expectHeld: false, logger: logger)
                    throw error
                } catch {
                    // A cancel or timeout can race the grant: make sure nothing is left held.
                    await connection.releaseSessionLock(key, mode: mode, expectHeld: false, logger: logger)
                    throw error
                }
                guard acquired else {
                    throw PostgresLocksError(code: .lockTimeout, message: "advisory lock \(key) is held by another session")
                }
                if verifyHolder {
                    // The pooling probe could not tell: make sure this session holds the lock
                    // before the body runs.
                    let held = try await connection.runStatement(AdvisoryLockSQL.isHeld(key, mode: mode), logger: logger).rows[0].decode(Int64.self)
                    guard held > 0 else {
                        await connection.closeDiscardingErrors()
                        throw PostgresLocksError.transactionPooling(feature: "a session advisory lock")
                    }
                }
                let outcome = await connection.runGuardingSession(key: key, mode: mode, heartbeat: heartbeat, logger: logger, body)
                if case .failure(let error as PostgresLocksError) = outcome, error.code == .lockLost {
                    // The session is gone or unanswering: never send it more statements.
                    await connection.closeDiscardingErrors()
                } else {
                    await connection.releaseSessionLock(key, mode: mode, expectHeld: true, logger: logger)
                }
                return try outcome.get()
            }
        } catch {
            throw PostgresLocksError.wrap(error)
        }
    }
}

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

    /// Takes a session lock; returns false when `.immediately` finds it taken.
    func acquireSessionLock(_ key: LockKey, mode: LockMode, wait: LockWait, canceller: PostgresClient, logger: Logger) async throws -> Bool {
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
                try await withCheckedTransaction(options: .init(lockTimeout: duration), logger: logger) { transaction in
                    try await transaction.runLockWait(AdvisoryLockSQL.call(function, key: key), canceller: canceller)
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
            logger.warning("could not confirm the release of a session lock; closing the connection", metadata: ["key": "\(key)", "error": "\(error)"])
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
        let (closed, closedContinuation) = AsyncStream<Void>.makeStream()
        let unregister = onClose {
            closedContinuation.yield()
            closedContinuation.finish()
        }
        defer { unregister() }
        return await withTaskGroup(of: SessionEvent<Result>.self) { group in
            group.addTask {
                do { return .finished(.success(try await body())) } catch { return .finished(.failure(error)) }
            }
            group.addTask {
                for await _ in closed { return .lost("the connection closed") }
                return .watchEnded
            }
            if let heartbeat {
                group.addTask {
                    while true {
                        do { try await Task.sleep(for: heartbeat) } catch { return .watchEnded }
                        // A heartbeat that gets no answer within another interval counts as a
                        // lost session too: the lock can no longer be vouched for.
                        let answered = await withTaskGroup(of: Bool?.self) { probe -> Bool? in
                            probe.addTask {
                                do {
                                    // The heartbeat asks whether this session still holds the
                                    // lock: a server process that changed under the connection
                                    // (an undetected transaction pooler) shows as a lost lock.
                                    let held = try await self.runStatement(AdvisoryLockSQL.isHeld(key, mode: mode), logger: logger).rows[0].decode(Int64.self)
                                    return held > 0
                                } catch {
                                    return Task.isCancelled ? nil : false
                                }
                            }
                            probe.addTask {
                                do { try await Task.sleep(for: heartbeat * 2) } catch { return nil }
                                // Closing fails the unanswered statement, so this group can end.
                                await self.closeDiscardingErrors()
                                return false
                            }
                            let first = await probe.next() ?? nil
                            probe.cancelAll()
                            return first
                        }
                        guard let answered else { return .watchEnded }
                        if !answered {
                            if Task.isCancelled { return .watchEnded }
                            await self.closeDiscardingErrors()
                            return .lost("a heartbeat failed, found the lock no longer held by this session, or got no answer within \(heartbeat * 2)")
                        }
                    }
                }
            }
            var outcome: Swift.Result<Result, any Error>?
            while let event = await group.next() {
                switch event {
                case .finished(let result):
                    if outcome == nil { outcome = result }
                    group.cancelAll()
                    closedContinuation.finish()
                case .lost(let reason):
                    if outcome == nil {
                        LockMetrics.lost(logger: logger)
                        logger.error("session advisory lock lost; cancelling the guarded work", metadata: ["key": "\(key)", "reason": "\(reason)"])
                        outcome = .failure(PostgresLocksError(code: .lockLost, message: "the session holding advisory lock \(key) ended (\(reason)); the guarded work was cancelled"))
                    }
                    group.cancelAll()
                    closedContinuation.finish()
                case .watchEnded:
                    break
                }
            }
            return outcome!
        }
    }
}

/// What ends the watch over a session lock's body.
enum SessionEvent<Value: Sendable>: Sendable {
    case finished(Swift.Result<Value, any Error>)
    case lost(String)
    case watchEnded
}
