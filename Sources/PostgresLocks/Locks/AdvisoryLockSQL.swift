import PostgresNIO

/// The SQL of advisory locks: the function for each scope, mode and wait, with the key bound.
///
/// Function names come from a fixed table; keys are always bound parameters.
enum AdvisoryLockSQL {
    /// `pg_[try_]advisory_[xact_]lock[_shared]`.
    static func lockFunction(scope: LockScope, mode: LockMode, try isTry: Bool) -> String {
        switch (isTry, scope, mode) {
        case (false, .session, .exclusive): return "pg_advisory_lock"
        case (false, .session, .shared): return "pg_advisory_lock_shared"
        case (false, .transaction, .exclusive): return "pg_advisory_xact_lock"
        case (false, .transaction, .shared): return "pg_advisory_xact_lock_shared"
        case (true, .session, .exclusive): return "pg_try_advisory_lock"
        case (true, .session, .shared): return "pg_try_advisory_lock_shared"
        case (true, .transaction, .exclusive): return "pg_try_advisory_xact_lock"
        case (true, .transaction, .shared): return "pg_try_advisory_xact_lock_shared"
        }
    }

    /// `pg_advisory_unlock[_shared]` (session locks only).
    static func unlockFunction(mode: LockMode) -> String {
        mode == .exclusive ? "pg_advisory_unlock" : "pg_advisory_unlock_shared"
    }

    /// `SELECT fn(key)::text` or `SELECT fn(namespace, id)::text`, with the key bound (the result
    /// as text: see ``PreparedSQL``).
    static func call(_ function: String, key: LockKey) -> PreparedSQL {
        let arguments = keyArguments(key, from: 1)
        return PreparedSQL("SELECT \(function)(\(arguments.sql))::text", arguments.values)
    }

    /// The key as the arguments of an advisory-lock function, numbered from `$first`:
    /// `$first::int8` for a 64-bit key, `$first::int4, $(first + 1)::int4` for a pair; with
    /// their values, in order.
    static func keyArguments(_ key: LockKey, from first: Int) -> (sql: String, values: [PreparedSQL.Value]) {
        if let pair = key.pairValue {
            return ("$\(first)::int4, $\(first + 1)::int4", [.int32(pair.namespace), .int32(pair.id)])
        }
        return ("$\(first)::int8", [.int64(key.int64Value ?? 0)])
    }

    /// Whether this backend holds `key` in `mode` (granted), from `pg_locks`.
    static func isHeld(_ key: LockKey, mode: LockMode) -> PostgresQuery {
        let identity = key.pgLocksIdentity
        let lockMode = mode == .exclusive ? "ExclusiveLock" : "ShareLock"
        return """
            SELECT count(*)::int8 FROM pg_locks
            WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND classid::int8 = \(Int64(identity.classid)) AND objid::int8 = \(Int64(identity.objid))
              AND objsubid = \(Int32(identity.objsubid)) AND mode = \(lockMode)
            """
    }
}
