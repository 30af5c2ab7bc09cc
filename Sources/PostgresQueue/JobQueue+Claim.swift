import Foundation
import Logging
import PostgresLocks
import PostgresNIO

extension JobQueue {
    /// Claims up to `limit` available jobs of `queue` (optionally only of `kinds`) in one
    /// statement, each with a lease of `lease`, marking them running and counting the attempt.
    ///
    /// The claim is `WITH c AS (SELECT … ORDER BY priority, run_at, id LIMIT n FOR NO KEY
    /// UPDATE SKIP LOCKED) UPDATE … FROM c RETURNING …`: concurrent workers get disjoint jobs
    /// without waiting on each other, the CTE keeps the planner from re-running the `LIMIT`
    /// subquery, and `NO KEY UPDATE` does not block foreign-key checks against the jobs.
    public func claim(
        from queue: String,
        kinds: [String] = [],
        limit: Int,
        lease: Duration,
        owner: String,
        on client: PostgresClient,
        logger: Logger
    ) async throws -> [ClaimedJob] {
        let statement = try claimStatement(queue: queue, kinds: kinds, limit: limit, lease: lease, owner: owner)
        return try Self.decodeClaimed(try await client.checkedQuery(statement, logger: logger).rows, queue: queue)
    }

    func claimStatement(queue: String, kinds: [String], limit: Int, lease: Duration, owner: String) throws -> PostgresQuery {
        try NewJob.validateName(queue, what: "queue name")
        guard (1...10_000).contains(limit) else {
            throw PostgresLocksError(code: .invalidArgument, message: "a claim takes 1 to 10000 jobs; asked for \(limit)")
        }
        var bindings = PostgresBindings(capacity: 5)
        bindings.append(queue)
        bindings.append(kinds)
        bindings.append(Int32(limit))
        bindings.append(owner)
        bindings.append(try Self.leaseMilliseconds(lease))
        return PostgresQuery(unsafeSQL: claimSQL, binds: bindings)
    }

    /// The claim statement's text with its values as `$1` queue, `$2` kinds (`text[]`), `$3`
    /// limit, `$4` owner, `$5` lease in milliseconds: what ``claim(from:kinds:limit:lease:owner:on:logger:)``
    /// binds, and what `pglock bench queue` gives pgbench (with its own values in their place).
    /// Built once per queue (``JobQueue/claimSQL``).
    static func claimSQL(jobsTable: QualifiedName) -> String {
        """
        WITH c AS (
            SELECT id FROM \(jobsTable.quoted)
            WHERE state = 'available' AND queue = $1 AND run_at <= now()
              AND (cardinality($2::text[]) = 0 OR kind = ANY($2::text[]))
            ORDER BY priority, run_at, id
            LIMIT $3
            FOR NO KEY UPDATE SKIP LOCKED
        )
        UPDATE \(jobsTable.quoted) j
        SET state = 'running', attempt = j.attempt + 1, attempted_at = now(), lease_owner = $4,
            lease_token = gen_random_uuid(), lease_expires_at = now() + $5 * interval '1 millisecond'
        FROM c WHERE j.id = c.id
        RETURNING j.id, j.lease_token, j.kind, j.payload::text, j.priority, j.attempt, j.max_attempts,
                  COALESCE(j.unique_key, ''), j.created_at, j.run_at
        """
    }

    static func decodeClaimed(_ rows: [PostgresRow], queue: String) throws -> [ClaimedJob] {
        try rows.map { row in
            let (id, token, kind, payload, priority, attempt, maxAttempts, uniqueKey, createdAt, runAt) =
                try row.decode((Int64, UUID, String, String, Int16, Int32, Int32, String, Date, Date).self)
            return ClaimedJob(
                lease: JobLease(id: id, token: token), queue: queue, kind: kind, payloadJSON: payload, priority: priority,
                attempt: attempt, maxAttempts: maxAttempts, uniqueKey: uniqueKey.isEmpty ? nil : uniqueKey,
                createdAt: createdAt, runAt: runAt
            )
        }
    }

    static func leaseMilliseconds(_ lease: Duration) throws -> Int64 {
        let milliseconds = Backoff.milliseconds(lease)
        guard milliseconds >= 10, milliseconds <= 7 * 24 * 3_600_000 else {
            throw PostgresLocksError(code: .invalidArgument, message: "a lease must be from 10 ms to 7 days; found \(lease)")
        }
        return milliseconds
    }
}
