import Logging
import PostgresNIO

extension Transaction {
    /// The most keys one call takes; more should be split across transactions (each key uses
    /// an entry of the server's shared lock table).
    public static let maximumKeysPerCall = 10_000

    /// Takes many transaction-scoped advisory locks at once: deduplicated, shared+exclusive on
    /// one key merged into exclusive, sorted into one global order (see
    /// ``LockRequest/normalize(_:)``), and taken in **one round trip**, all or nothing.
    ///
    /// - Parameters:
    ///   - requests: the keys and modes, in any order, duplicates allowed.
    ///   - wait: `.forever`; `.immediately` (all free now, or none taken); or
    ///     `.timeout(d)`: one deadline for the whole set (a `statement_timeout` on the one
    ///     statement that takes them), after which none is held.
    /// - Throws: ``PostgresLocksError/Code/lockTimeout`` when the locks are not all granted: for
    ///   `.immediately` when some key is taken, for `.timeout` when the deadline passes (then none
    ///   is held and the transaction stays usable), ``PostgresLocksError/Code/invalidArgument`` for an empty set or more than
    ///   ``maximumKeysPerCall`` keys, ``PostgresLocksError/Code/lockTableFull`` when the server's
    ///   lock table has no room.
    public func advisoryLocks(
        _ requests: [LockRequest],
        wait: LockWait = .forever
    ) async throws {
        let sorted = LockRequest.normalize(requests)
        guard !sorted.isEmpty else {
            throw PostgresLocksError.invalidArgument("no keys to lock: pass at least one")
        }
        guard sorted.count <= Self.maximumKeysPerCall else {
            throw PostgresLocksError.invalidArgument("\(sorted.count) keys in one call; at most \(Self.maximumKeysPerCall): split them across transactions")
        }
        if sorted.count == 1 {
            return try await advisoryLock(sorted[0].key, mode: sorted[0].mode, wait: wait)
        }
        _ = try wait.lockTimeoutSetting()
        let statement = Self.manyKeysStatement(sorted, try: wait == .immediately)
        let started = ContinuousClock.now
        let mode: LockMode = sorted.contains { $0.mode == .exclusive } ? .exclusive : .shared
        func record(_ outcome: LockMetrics.Outcome) {
            LockMetrics.record(outcome, scope: .transaction, mode: mode, keys: sorted.count, waited: ContinuousClock.now - started, logger: logger, key: "\(sorted.count) keys")
        }
        do {
            guard try await takeManyKeys(sorted, statement: statement, wait: wait) else {
                record(.notAcquired)
                throw PostgresLocksError(code: .lockTimeout, message: "\(sorted.count) advisory locks were not all free; none is held")
            }
            record(.acquired(contended: false))
        } catch let error as PostgresLocksError where error.code == .lockTimeout {
            record(.notAcquired)
            throw error
        } catch {
            LockMetrics.failed(error, scope: .transaction, mode: mode, keys: sorted.count, waited: ContinuousClock.now - started, key: "\(sorted.count) keys")
            throw error
        }
    }

    private func takeManyKeys(_ sorted: [LockRequest], statement: PreparedSQL, wait: LockWait) async throws -> Bool {
        switch wait {
        case .immediately:
            // Try each; if any is taken, roll back to the savepoint, which releases the others.
            struct NotAll: Error {}
            do {
                try await withSavepoint {
                    let rows = try await queryPrepared(statement)
                    guard try rows.allSatisfy({ try $0.boolFromText() }) else { throw NotAll() }
                }
                return true
            } catch is NotAll {
                return false
            }
        case .forever:
            try await runLockWait(statement)
            return true
        case .timeout:
            let timeout = try wait.lockTimeoutSetting()!
            try await waitInSavepoint(
                statement, setting: "statement_timeout", value: timeout, expiresWith: [.queryCanceled, .lockNotAvailable],
                timeoutMessage: "\(sorted.count) advisory locks were not all granted within \(timeout); none is held"
            )
            return true
        }
    }

    /// One statement that locks every request in order. `unnest` of several arrays yields rows
    /// in array order and the select list is evaluated row by row, so the locks are requested
    /// in exactly the sorted order. (No `ORDER BY` or `LIMIT`, which could change when the
    /// lock functions run.)
    static func manyKeysStatement(_ sorted: [LockRequest], try isTry: Bool) -> PreparedSQL {
        var isPair: [Bool] = [], bigKeys: [Int64] = [], namespaces: [Int32] = [], ids: [Int32] = [], shared: [Bool] = []
        for request in sorted {
            if let value = request.key.int64Value {
                isPair.append(false); bigKeys.append(value); namespaces.append(0); ids.append(0)
            } else if let pair = request.key.pairValue {
                isPair.append(true); bigKeys.append(0); namespaces.append(pair.namespace); ids.append(pair.id)
            }
            shared.append(request.mode == .shared)
        }
        return PreparedSQL(
            isTry ? manyKeysTrySQL : manyKeysWaitSQL,
            [.boolArray(isPair), .int64Array(bigKeys), .int32Array(namespaces), .int32Array(ids), .boolArray(shared)]
        )
    }

    /// The many-keys statement that tries every key without waiting, built once.
    private static let manyKeysTrySQL = manyKeysSQL(try: true)
    /// The many-keys statement that waits for every key, built once.
    private static let manyKeysWaitSQL = manyKeysSQL(try: false)

    /// The text of ``manyKeysStatement(_:try:)``: lock functions from the fixed table only.
    private static func manyKeysSQL(try isTry: Bool) -> String {
        let exclusiveFunction = AdvisoryLockSQL.lockFunction(scope: .transaction, mode: .exclusive, try: isTry)
        let sharedFunction = AdvisoryLockSQL.lockFunction(scope: .transaction, mode: .shared, try: isTry)
        return """
            SELECT (CASE WHEN p THEN
                        CASE WHEN s THEN \(sharedFunction)(a, b) ELSE \(exclusiveFunction)(a, b) END
                    ELSE
                        CASE WHEN s THEN \(sharedFunction)(k) ELSE \(exclusiveFunction)(k) END
                    END)::text
            FROM unnest($1::bool[], $2::int8[], $3::int4[], $4::int4[], $5::bool[]) AS t(p, k, a, b, s)
            """
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
    ///
    /// Cancelling the task ends a server-side wait (through the client the connection was
    /// leased from, or by closing a dedicated connection).
    /// - Throws: ``PostgresLocksError/Code/lockTimeout`` when the lock is not granted: at once
    ///   for `.immediately` when it is held elsewhere, or when a `.timeout` expires (the
    ///   transaction stays usable: the wait ran in a savepoint), `CancellationError` when the
    ///   task is cancelled while waiting, and other ``PostgresLocksError``s such as `deadlock`.
    public func advisoryLock(
        _ key: LockKey,
        mode: LockMode = .exclusive,
        wait: LockWait = .forever
    ) async throws {
        _ = try wait.lockTimeoutSetting()  // a bad timeout is refused before anything is sent
        // Ask without waiting first: free locks (the common case) cost one round trip, and a
        // refusal tells the metrics the lock was contended before the server-side wait.
        let granted = try await queryPrepared(Self.tryLockStatement(key, mode: mode))[0].boolFromText()
        try await advisoryLock(key, mode: mode, wait: wait, tried: granted)
    }

    /// The try-lock ``advisoryLock(_:mode:wait:)`` sends first: its one row says whether the
    /// lock was granted at once.
    static func tryLockStatement(_ key: LockKey, mode: LockMode) -> PreparedSQL {
        AdvisoryLockSQL.call(AdvisoryLockSQL.lockFunction(scope: .transaction, mode: mode, try: true), key: key)
    }

    /// The rest of ``advisoryLock(_:mode:wait:)`` once its try-lock answered `tried` (`wait`
    /// already checked).
    func advisoryLock(_ key: LockKey, mode: LockMode, wait: LockWait, tried granted: Bool) async throws {
        if granted {
            LockMetrics.record(.acquired(contended: false), scope: .transaction, mode: mode, keys: 1, waited: nil, logger: logger, key: "\(key)")
            return
        }
        let statement = AdvisoryLockSQL.call(AdvisoryLockSQL.lockFunction(scope: .transaction, mode: mode, try: false), key: key)
        let started = ContinuousClock.now
        do {
            switch wait {
            case .immediately:
                LockMetrics.record(.notAcquired, scope: .transaction, mode: mode, keys: 1, waited: nil, logger: logger, key: "\(key)")
                throw PostgresLocksError(code: .lockTimeout, message: "advisory lock \(key) is held by another session")
            case .forever:
                try await runLockWait(statement)
            case .timeout:
                let timeout = try wait.lockTimeoutSetting()!
                try await waitInSavepoint(
                    statement, setting: "lock_timeout", value: timeout, expiresWith: [.lockNotAvailable],
                    timeoutMessage: "advisory lock \(key) was not granted within \(timeout)"
                )
            }
        } catch let error as PostgresLocksError where error.code == .lockTimeout {
            LockMetrics.record(.notAcquired, scope: .transaction, mode: mode, keys: 1, waited: ContinuousClock.now - started, logger: logger, key: "\(key)")
            throw error
        } catch {
            LockMetrics.failed(error, scope: .transaction, mode: mode, keys: 1, waited: ContinuousClock.now - started, key: "\(key)")
            throw error
        }
        LockMetrics.record(.acquired(contended: true), scope: .transaction, mode: mode, keys: 1, waited: ContinuousClock.now - started, logger: logger, key: "\(key)")
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
        timeoutMessage: @autoclosure () -> String
    ) async throws {
        do {
            try await withSavepoint {
                let previous = try await query("SELECT current_setting(\(setting))").rows[0].decode(String.self)
                try await query("SELECT set_config(\(setting), \(value), true)")
                try await runLockWait(statement)
                try await query("SELECT set_config(\(setting), \(previous), true)")
            }
        } catch let error as PostgresLocksError where expiresWith.contains(error.code) {
            throw PostgresLocksError(code: .lockTimeout, message: timeoutMessage(), sqlState: error.sqlState, underlying: error)
        }
    }

    /// Runs a lock statement that may wait, marking the transaction aborted if it fails.
    func runLockWait(_ statement: PreparedSQL) async throws {
        _ = try await recordingAbort { try await connection.runCancellableLockStatement(statement, canceller: canceller, logger: logger) }
    }
}
