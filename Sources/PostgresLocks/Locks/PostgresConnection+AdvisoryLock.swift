import Logging
import PostgresNIO

extension PostgresConnection {
    /// Runs one lock statement that may wait on the server, so that cancelling the calling task
    /// ends the server-side wait.
    ///
    /// PostgresNIO sends no cancel request when a task is cancelled: a task blocked in
    /// `SELECT pg_advisory_lock(…)` would stay blocked until the lock is granted, and the
    /// connection would then hold the lock. Here, cancellation runs `pg_cancel_backend(pid)`
    /// from another pooled connection; the waiting statement then fails with 57014 and this
    /// function throws `CancellationError`. If the lock was granted just before the cancel
    /// arrived, the caller's cleanup (rollback or unlock) releases it. The cancel never lands
    /// on a later statement (see ``LockWaitCancel``): if it cannot be settled, the connection
    /// is closed.
    func runCancellableLockStatement(
        _ query: PostgresQuery,
        canceller: PostgresClient,
        logger: Logger
    ) async throws -> PostgresQueryResult {
        try await runCancellable(canceller: canceller, logger: logger) { try await self.runStatement(query, logger: logger) }
    }

    /// ``runCancellableLockStatement(_:canceller:logger:)`` for one of the library's prepared
    /// lock statements; returns its rows.
    @discardableResult
    func runCancellableLockStatement(
        _ statement: PreparedSQL,
        canceller: PostgresClient,
        logger: Logger
    ) async throws -> [PostgresRow] {
        try await runCancellable(canceller: canceller, logger: logger) { try await self.runPrepared(statement, logger: logger) }
    }

    private func runCancellable<Value: Sendable>(
        canceller: PostgresClient,
        logger: Logger,
        _ run: () async throws -> Value
    ) async throws -> Value {
        let pid = try await backendPID(logger: logger)
        try Task.checkCancellation()
        let cancel = LockWaitCancel()
        let outcome: Result<Value, any Error>
        do {
            outcome = .success(try await withTaskCancellationHandler {
                try await run()
            } onCancel: {
                cancel.request(pid: pid, canceller: canceller, logger: logger)
            })
        } catch {
            outcome = .failure(error)
        }
        if await !cancel.statementEnded() {
            logger.warning("a cancel of a lock wait could not be settled; closing the connection so it cannot cancel a later statement", metadata: ["pid": "\(pid)"])
            await closeDiscardingErrors()
        }
        switch outcome {
        case .failure(let error as PostgresLocksError) where error.code == .queryCanceled && Task.isCancelled:
            throw CancellationError()
        case .failure(let error):
            throw error
        case .success(let result):
            try Task.checkCancellation()
            return result
        }
    }
}

extension Transaction {
    /// Takes a transaction-scoped advisory lock inside this transaction; it is released when the
    /// transaction ends (commit or rollback) and cannot be released earlier.
    ///
    /// - Parameters:
    ///   - key: the lock's key.
    ///   - mode: exclusive (default) or shared.
    ///   - wait: `.forever` (default), `.immediately`, or `.timeout(d)`.
    ///   - canceller: a client used to cancel the server-side wait if the task is cancelled
    ///     (usually the client this transaction's connection came from).
    /// - Returns: `true` when the lock is held; `false` only for `.immediately` when it is taken.
    /// - Throws: ``PostgresLocksError/Code/lockTimeout`` when a `.timeout` expires (the
    ///   transaction stays usable: the wait ran in a savepoint), `CancellationError` when the
    ///   task is cancelled while waiting, and other ``PostgresLocksError``s such as `deadlock`.
    @discardableResult
    public func advisoryLock(
        _ key: LockKey,
        mode: LockMode = .exclusive,
        wait: LockWait = .forever,
        canceller: PostgresClient
    ) async throws -> Bool {
        _ = try wait.lockTimeoutSetting()  // a bad timeout is refused before anything is sent
        // Ask without waiting first: free locks (the common case) cost one round trip, and a
        // refusal tells the metrics the lock was contended before the server-side wait.
        let tryStatement = AdvisoryLockSQL.call(AdvisoryLockSQL.lockFunction(scope: .transaction, mode: mode, try: true), key: key)
        if try await queryPrepared(tryStatement)[0].boolFromText() {
            LockMetrics.record(.acquired(contended: false), scope: .transaction, mode: mode, keys: 1, waited: nil, logger: logger, key: "\(key)")
            return true
        }
        let statement = AdvisoryLockSQL.call(AdvisoryLockSQL.lockFunction(scope: .transaction, mode: mode, try: false), key: key)
        let started = ContinuousClock.now
        do {
            switch wait {
            case .immediately:
                LockMetrics.record(.notAcquired, scope: .transaction, mode: mode, keys: 1, waited: nil, logger: logger, key: "\(key)")
                return false
            case .forever:
                try await runLockWait(statement, canceller: canceller)
            case .timeout:
                let timeout = try wait.lockTimeoutSetting()!
                try await waitInSavepoint(
                    statement, setting: "lock_timeout", value: timeout, expiresWith: [.lockNotAvailable],
                    canceller: canceller, timeoutMessage: "advisory lock \(key) was not granted within \(timeout)"
                )
            }
        } catch let error as PostgresLocksError where error.code == .lockTimeout {
            LockMetrics.record(.notAcquired, scope: .transaction, mode: mode, keys: 1, waited: ContinuousClock.now - started, logger: logger, key: "\(key)")
            throw error
        }
        LockMetrics.record(.acquired(contended: true), scope: .transaction, mode: mode, keys: 1, waited: ContinuousClock.now - started, logger: logger, key: "\(key)")
        return true
    }

    /// Runs a lock statement in a savepoint with a transaction-local setting (`lock_timeout` or
    /// `statement_timeout`) changed for that statement only and restored afterwards. If the
    /// statement fails, rolling back to the savepoint releases whatever it was granted and
    /// restores the setting, and the transaction stays usable.
    ///
    /// An error whose code is in `expiresWith` (the setting expiring) is thrown as
    /// ``PostgresLocksError/Code/lockTimeout`` with `timeoutMessage`.
    func waitInSavepoint(
        _ statement: PreparedSQL,
        setting: String,
        value: String,
        expiresWith: Set<PostgresLocksError.Code>,
        canceller: PostgresClient,
        timeoutMessage: @autoclosure () -> String
    ) async throws {
        do {
            try await withSavepoint {
                let previous = try await query("SELECT current_setting(\(setting))").rows[0].decode(String.self)
                try await query("SELECT set_config(\(setting), \(value), true)")
                try await runLockWait(statement, canceller: canceller)
                try await query("SELECT set_config(\(setting), \(previous), true)")
            }
        } catch let error as PostgresLocksError where expiresWith.contains(error.code) {
            throw PostgresLocksError(code: .lockTimeout, message: timeoutMessage(), sqlState: error.sqlState, underlying: error)
        }
    }

    /// Runs a lock statement that may wait, marking the transaction aborted if it fails.
    func runLockWait(_ statement: PreparedSQL, canceller: PostgresClient) async throws {
        do {
            _ = try await connection.runCancellableLockStatement(statement, canceller: canceller, logger: logger)
        } catch {
            recordAbort(error)
            throw error
        }
    }
}
