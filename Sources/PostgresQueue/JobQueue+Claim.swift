import Foundation
import Logging
import PostgresLocks
import PostgresNIO

extension JobQueue {
    /// Claims up to `limit` available jobs of `queue` (optionally only of `kinds`), each with a
    /// lease of `lease`, marking them running and counting the attempt.
    ///
    /// A queue without limits is claimed in one statement: `WITH c AS (SELECT … ORDER BY
    /// priority, run_at, id LIMIT n FOR NO KEY UPDATE SKIP LOCKED) UPDATE … FROM c RETURNING …`.
    /// Concurrent workers get disjoint jobs without waiting on each other, the CTE keeps the
    /// planner from re-running the `LIMIT` subquery, and `NO KEY UPDATE` does not block
    /// foreign-key checks against the jobs. That statement claims nothing from a paused queue,
    /// nor from one under fleet-wide limits (``setLimits(_:queue:on:logger:)``): those are
    /// claimed in a short transaction that takes the queue's claim lock, counts what runs (and
    /// what started within each rate window) with a snapshot taken after the lock, and claims
    /// only what the limits leave room for. Limits hold across every worker and process.
    public func claim(
        from queue: String,
        kinds: [String] = [],
        limit: Int,
        lease: Duration,
        owner: String,
        on client: PostgresClient,
        logger: Logger
    ) async throws -> [ClaimedJob] {
        try await claim(from: queue, kinds: kinds, limit: limit, lease: lease, owner: owner, after: nil, on: client, logger: logger)
    }

    /// ``claim(from:kinds:limit:lease:owner:on:logger:)``, taking only jobs that sort after
    /// `position` in claim order (`(priority, run_at, id) > position`) when one is given.
    ///
    /// A worker passes the place of the last job it claimed (see ``ClaimCursor``): the scan
    /// then starts there in the `jobs_available` index instead of walking the entries that
    /// claimed jobs left at its front, which no index scan can skip while an old snapshot is
    /// held. Jobs that sort before `position` are not claimed: a full claim (`position` nil)
    /// finds them. A queue under limits is claimed in full whatever `position` says.
    package func claim(
        from queue: String,
        kinds: [String] = [],
        limit: Int,
        lease: Duration,
        owner: String,
        after position: ClaimCursor.Position?,
        on client: PostgresClient,
        logger: Logger
    ) async throws -> [ClaimedJob] {
        let statement = try claimStatement(queue: queue, kinds: kinds, limit: limit, lease: lease, owner: owner, after: position)
        let claimed = try Self.decodeClaimed(try await client.checkedQuery(statement, logger: logger).rows, queue: queue)
        guard claimed.isEmpty else { return claimed }
        // Nothing claimed: the queue may be under limits (the fast statement leaves those alone).
        let control = try await self.control(of: queue, on: client, logger: logger)
        guard control.limited, !control.paused else { return [] }
        let full = position == nil ? statement : try claimStatement(queue: queue, kinds: kinds, limit: limit, lease: lease, owner: owner)
        return try await claimUnderLimits(full.binds, queue: queue, on: client, logger: logger)
    }

    /// The limited claim, in its own transaction behind the queue's claim lock.
    func claimUnderLimits(_ binds: PostgresBindings, queue: String, on client: PostgresClient, logger: Logger) async throws -> [ClaimedJob] {
        let lock = claimLockKey(queue: queue)
        let sql = limitedClaimSQL
        return try await client.withCheckedTransaction(logger: logger) { tx in
            // Claims of a limited queue take turns: each counts with a snapshot taken after the
            // previous one committed (the statement below starts after the lock is granted).
            try await tx.advisoryLock(lock)
            return try Self.decodeClaimed(try await tx.query(PostgresQuery(unsafeSQL: sql, binds: binds)).rows, queue: queue)
        }
    }

    /// The advisory lock that limited claims of `queue` take in turn.
    func claimLockKey(queue: String) -> LockKey {
        .hashed("pglocks.queue.claim:\(schema.name):\(queue)")
    }

    /// The claim statement with its values bound: ``claimSQL`` (`$1…$5`), or with `position`
    /// ``boundedClaimSQL`` (`$6…$8` its priority, run time and id).
    func claimStatement(queue: String, kinds: [String], limit: Int, lease: Duration, owner: String, after position: ClaimCursor.Position? = nil) throws -> PostgresQuery {
        try NewJob.validateName(queue, what: "queue name")
        try PostgresLocksError.require((1...10_000).contains(limit), "a claim takes 1 to 10000 jobs; asked for \(limit)")
        var bindings = PostgresBindings(capacity: 8)
        bindings.append(queue)
        bindings.append(kinds)
        bindings.append(Int32(limit))
        bindings.append(owner)
        bindings.append(try Self.leaseMilliseconds(lease))
        guard let position else { return PostgresQuery(unsafeSQL: claimSQL, binds: bindings) }
        // A run time that went through `Date` comes back at most 1 µs early (PostgresNIO
        // truncates when encoding), never late: the bound may take in the job at `position`
        // itself again (no longer available), never skip one after it.
        bindings.append(position.priority)
        bindings.append(position.runAt)
        bindings.append(position.id)
        return PostgresQuery(unsafeSQL: boundedClaimSQL, binds: bindings)
    }

    /// What a claim returns, in ``decodeClaimed(_:queue:)``'s order.
    static let claimedColumns = """
        j.id, j.lease_token, j.kind, j.payload::text, j.priority, j.attempt, j.max_attempts,
        COALESCE(j.unique_key, ''), j.created_at, j.run_at, j.tags, j.metadata::text, j.snoozes
        """

    /// The claim statement's text with its values as `$1` queue, `$2` kinds (`text[]`), `$3`
    /// limit, `$4` owner, `$5` lease in milliseconds: what ``claim(from:kinds:limit:lease:owner:on:logger:)``
    /// binds, and what `pglock bench queue` gives pgbench (with its own values in their place).
    /// Built once per queue (``JobQueue/claimSQL``). It claims nothing from a queue that is
    /// paused or under limits (one primary-key probe of the queues table, evaluated once).
    ///
    /// `bounded` adds `AND (priority, run_at, id) > ($6, $7, $8)`: the claim after a
    /// ``ClaimCursor/Position`` (``JobQueue/boundedClaimSQL``). That row comparison is an index
    /// condition of `jobs_available` after `queue = $1`: the scan starts at the bound.
    static func claimSQL(jobsTable: QualifiedName, queuesTable: QualifiedName, bounded: Bool = false) -> String {
        """
        WITH c AS (
            SELECT id FROM \(jobsTable.quoted)
            WHERE state = 'available' AND queue = $1 AND run_at <= now()\(bounded ? "\n      AND (priority, run_at, id) > ($6::int2, $7::timestamptz, $8::int8)" : "")
              AND (cardinality($2::text[]) = 0 OR kind = ANY($2::text[]))
              AND NOT EXISTS (SELECT 1 FROM \(queuesTable.quoted) q WHERE q.name = $1 AND (q.paused OR q.limited))
            ORDER BY priority, run_at, id
            LIMIT $3
            FOR NO KEY UPDATE SKIP LOCKED
        )
        UPDATE \(jobsTable.quoted) j
        SET state = 'running', attempt = j.attempt + 1, attempted_at = now(), lease_owner = $4,
            lease_token = gen_random_uuid(), lease_expires_at = now() + $5 * interval '1 millisecond'
        FROM c WHERE j.id = c.id
        RETURNING \(claimedColumns)
        """
    }

    /// The claim of a queue under limits, with the same `$1…$5` as ``claimSQL(jobsTable:queuesTable:)``.
    /// Run after taking the queue's claim lock: it counts running jobs per kind (and for the
    /// queue, kind `''`), and starts within each rate window, then claims in claim order at most
    /// what every limit leaves room for, logging the starts that rate limits count.
    static func limitedClaimSQL(jobs: QualifiedName, queues: QualifiedName, limits: QualifiedName, starts: QualifiedName) -> String {
        """
        WITH clock AS (
            -- The time after the claim lock was granted (now() would be the transaction's start).
            SELECT clock_timestamp() AS ts
        ), running AS (
            SELECT kind, count(*)::int AS n FROM \(jobs.quoted) WHERE state = 'running' AND queue = $1 GROUP BY kind
        ), lim AS (
            SELECT l.kind, l.max_starts IS NOT NULL AS rated,
                   LEAST(
                       COALESCE(l.max_running - CASE WHEN l.kind = '' THEN (SELECT COALESCE(sum(n), 0) FROM running)
                                                     ELSE COALESCE((SELECT n FROM running r WHERE r.kind = l.kind), 0) END, 2147483647),
                       COALESCE(l.max_starts - (SELECT count(*) FROM \(starts.quoted) s
                                                WHERE s.queue = $1 AND (l.kind = '' OR s.kind = l.kind)
                                                  AND s.started_at > (SELECT ts FROM clock) - l.starts_period_ms * interval '1 millisecond'), 2147483647)
                   ) AS room
            FROM \(limits.quoted) l WHERE l.queue = $1
        ), total AS (
            SELECT CASE WHEN EXISTS (SELECT 1 FROM \(queues.quoted) q WHERE q.name = $1 AND q.paused) THEN 0
                        ELSE GREATEST(LEAST($3, COALESCE((SELECT room FROM lim WHERE kind = ''), $3)), 0) END AS room
        ), candidates AS (
            SELECT id, kind, priority, run_at FROM \(jobs.quoted)
            WHERE state = 'available' AND queue = $1 AND run_at <= now()
              AND (cardinality($2::text[]) = 0 OR kind = ANY($2::text[]))
              AND kind NOT IN (SELECT kind FROM lim WHERE kind <> '' AND room <= 0)
              AND (SELECT room FROM total) > 0
            ORDER BY priority, run_at, id
            LIMIT $3 * 4 + 16
        ), chosen AS (
            SELECT c.id FROM (
                SELECT id, kind, priority, run_at, row_number() OVER (PARTITION BY kind ORDER BY priority, run_at, id) AS rn
                FROM candidates
            ) c LEFT JOIN lim l ON l.kind = c.kind
            WHERE c.rn <= COALESCE(l.room, 2147483647)
            ORDER BY c.priority, c.run_at, c.id
            LIMIT (SELECT room FROM total)
        ), locked AS (
            SELECT id FROM \(jobs.quoted) WHERE id IN (SELECT id FROM chosen) AND state = 'available'
            FOR NO KEY UPDATE SKIP LOCKED
        ), claimed AS (
            UPDATE \(jobs.quoted) j
            SET state = 'running', attempt = j.attempt + 1, attempted_at = (SELECT ts FROM clock), lease_owner = $4,
                lease_token = gen_random_uuid(), lease_expires_at = (SELECT ts FROM clock) + $5 * interval '1 millisecond'
            FROM locked WHERE j.id = locked.id
            RETURNING \(claimedColumns)
        ), logged AS (
            INSERT INTO \(starts.quoted) (queue, kind, started_at)
            SELECT $1, c.kind, (SELECT ts FROM clock) FROM claimed c
            WHERE EXISTS (SELECT 1 FROM lim WHERE rated AND (lim.kind = '' OR lim.kind = c.kind))
        )
        SELECT * FROM claimed
        """
    }

    static func decodeClaimed(_ rows: [PostgresRow], queue: String) throws -> [ClaimedJob] {
        try rows.map { row in
            let (id, token, kind, payload, priority, attempt, maxAttempts, uniqueKey, createdAt, runAt, tags, metadata, snoozes) =
                try row.decode((Int64, UUID, String, String, Int16, Int32, Int32, String, Date, Date, [String], String, Int32).self)
            return ClaimedJob(
                lease: JobLease(id: id, token: token), queue: queue, kind: kind, payloadJSON: payload, priority: priority,
                attempt: attempt, maxAttempts: maxAttempts, uniqueKey: uniqueKey.isEmpty ? nil : uniqueKey,
                createdAt: createdAt, runAt: runAt, tags: tags, metadata: JobMetadata.decode(metadata), snoozes: snoozes
            )
        }
    }

    static func leaseMilliseconds(_ lease: Duration) throws -> Int64 {
        let milliseconds = Backoff.milliseconds(lease)
        try PostgresLocksError.require(milliseconds >= 10 && milliseconds <= 7 * 24 * 3_600_000, "a lease must be from 10 ms to 7 days; found \(lease)")
        return milliseconds
    }
}
