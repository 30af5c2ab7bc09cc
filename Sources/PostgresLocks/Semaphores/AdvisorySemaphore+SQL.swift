import PostgresNIO

extension AdvisorySemaphore {
    /// One statement that tries the permits in `order` without waiting and stops at the first
    /// it gets: its index, or no row when every permit is held.
    ///
    /// `unnest` yields the rows in array order, and `LIMIT 1` stops the scan at the first row
    /// that passes the filter, so the try function runs on the permits in order until one is
    /// granted and never after: a taker holds at most one permit.
    static func tryPermitsStatement(_ order: [(index: Int, key: LockKey)], scope: LockScope) -> PreparedSQL {
        let function = AdvisoryLockSQL.lockFunction(scope: scope, mode: .exclusive, try: true)
        return PreparedSQL(
            "SELECT s.i::text FROM unnest($1::int8[], $2::int4[]) AS s(k, i) WHERE \(function)(s.k) LIMIT 1",
            [.int64Array(order.map { $0.key.int64Value ?? 0 }), .int32Array(order.map { Int32($0.index) })]
        )
    }

    /// The index of the permit with the fewest waiters in `pg_locks` (ties: the first in
    /// `order`), for a taker that found every permit held.
    static func shortestQueueStatement(_ order: [(index: Int, key: LockKey)]) -> PreparedSQL {
        PreparedSQL(
            """
            SELECT s.i::text
            FROM unnest($1::int8[], $2::int4[]) WITH ORDINALITY AS s(k, i, position)
            LEFT JOIN (
                SELECT (classid::int8 << 32) | objid::int8 AS k, count(*) AS waiting
                FROM pg_locks
                WHERE locktype = 'advisory' AND objsubid = 1 AND NOT granted
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                GROUP BY 1
            ) w USING (k)
            ORDER BY COALESCE(w.waiting, 0), s.position
            LIMIT 1
            """,
            [.int64Array(order.map { $0.key.int64Value ?? 0 }), .int32Array(order.map { Int32($0.index) })]
        )
    }

    /// The index in a row of either statement.
    static func permitIndex(_ row: PostgresRow) throws -> Int {
        Int(try row.int64FromText())
    }
}
