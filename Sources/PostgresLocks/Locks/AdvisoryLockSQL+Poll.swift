import PostgresNIO

extension AdvisoryLockSQL {
    /// One statement that tries to take a session lock up to `attempts` times, `step` apart,
    /// on the server, and stops at the first success: `SELECT bool_or(got)::text` over a
    /// recursive CTE whose every further step sleeps, then calls `pg_try_advisory_lock[_shared]` once.
    ///
    /// Unlike a wait in the lock queue (`pg_advisory_lock` with `lock_timeout`), it never ends
    /// in an error (nothing in the server's log), never shows in `pg_locks` as a waiter (the
    /// holder is not reported as blocking anyone), and takes the lock at most once (session
    /// locks stack: a second success would need a second unlock). It answers `true` when the
    /// lock was taken, `false` when every attempt found it held. The price: a lock freed
    /// between two attempts is taken up to `step` later, and waiters are not served in order.
    ///
    /// - Parameters:
    ///   - key: the lock, bound as one `int8` or two `int4` values.
    ///   - mode: exclusive or shared.
    ///   - attempts: how many tries in all, at least 1 (the first without a pause).
    ///   - stepMilliseconds: the pause before each further try.
    static func pollSessionLock(_ key: LockKey, mode: LockMode, attempts: Int, stepMilliseconds: Int64) -> PreparedSQL {
        let function = lockFunction(scope: .session, mode: mode, try: true)
        let arguments = keyArguments(key, from: 1)
        let step = arguments.values.count + 1
        let limit = step + 1
        // The pause is a lateral subquery on the previous step's row: a plain
        // `LATERAL pg_sleep(constant)` is run once and its result reused on every later step
        // (a function scan whose arguments did not change is not called again), so every try
        // after the second would come at once. The filters stop the recursion, without
        // another pause or try, at a success or the last attempt.
        let sql = """
            WITH RECURSIVE attempt(n, got) AS (
                SELECT 1, \(function)(\(arguments.sql))
                UNION ALL
                SELECT attempt.n + 1, \(function)(\(arguments.sql))
                FROM attempt CROSS JOIN LATERAL (
                    SELECT pg_sleep(($\(step)::int8 / 1000.0)::float8) WHERE NOT attempt.got AND attempt.n < $\(limit)::int4
                ) AS pause
                WHERE NOT attempt.got AND attempt.n < $\(limit)::int4
            )
            SELECT bool_or(got)::text FROM attempt
            """
        return PreparedSQL(sql, arguments.values + [.int64(max(0, stepMilliseconds)), .int32(Int32(clamping: max(1, attempts)))])
    }
}
