import Foundation
import Logging
import PostgresLocks
import PostgresNIO

extension JobQueue {
    /// Reclaims running jobs whose lease expired (their worker died or stopped heartbeating):
    /// they become available again (the attempt stays counted), or dead after their last
    /// attempt. Any number of workers may run it at once (`SKIP LOCKED`).
    public func reap(limit: Int = 1000, on client: PostgresClient, logger: Logger) async throws -> ReapResult {
        try await reap(limit: limit, since: .distantPast, on: client, logger: logger).result
    }

    /// ``reap(limit:on:logger:)`` looking only at leases that expired at or after `floor` (a
    /// range of the `jobs_running_lease` index; see ``ReapCursor``).
    ///
    /// - Returns: what it did, and the server's `now()` (every lease that expired before it
    ///   and after `floor` was looked at, unless the pass reaped `limit`).
    package func reap(limit: Int, since floor: Date, on client: PostgresClient, logger: Logger) async throws -> (result: ReapResult, serverNow: Date) {
        let row = try await client.checkedQuery("""
            WITH expired AS (
                SELECT id FROM \(identifier: jobsTable)
                WHERE state = 'running' AND lease_expires_at < now() AND lease_expires_at >= \(floor)
                ORDER BY lease_expires_at LIMIT \(Int32(max(1, limit)))
                FOR NO KEY UPDATE SKIP LOCKED
            ), reaped AS (
                UPDATE \(identifier: jobsTable) j
                SET state = CASE WHEN j.attempt >= j.max_attempts THEN 'dead' ELSE 'available' END,
                    finished_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
                    run_at = now(),
                    last_error = 'lease expired: worker ' || COALESCE(j.lease_owner, '?') || ' stopped heartbeating',
                    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
                FROM expired WHERE j.id = expired.id
                RETURNING j.state
            )
            SELECT now(), (count(*) FILTER (WHERE state <> 'dead'))::int8, (count(*) FILTER (WHERE state = 'dead'))::int8 FROM reaped
            """, logger: logger).rows[0]
        let (serverNow, reclaimed, dead) = try row.decode((Date, Int64, Int64).self)
        let result = ReapResult(reclaimed: Int(reclaimed), dead: Int(dead))
        if result.reclaimed + result.dead > 0 {
            logger.warning("reclaimed jobs with expired leases", metadata: ["reclaimed": "\(result.reclaimed)", "dead": "\(result.dead)"])
        }
        return (result, serverNow)
    }

    /// How many jobs of `queue` are ready to run (available, due), up to `cap`, counting only
    /// those after `position` in claim order when one is given.
    ///
    /// Workers record it as their depth gauge every `reapInterval`, so its cost is bounded
    /// twice: by `cap` (a backlog of millions is not walked every few seconds by every worker;
    /// ``stats(on:logger:)`` gives exact counts on demand), and by starting at the worker's
    /// ``ClaimCursor`` place, so the count walks the live jobs ahead of it and not the index
    /// entries that claimed jobs leave before it (which an old snapshot keeps from being marked
    /// dead). Jobs that sort before the place wait only until the next full claim, so the count
    /// is short by those at most.
    package func readyCount(queue: String, after position: ClaimCursor.Position?, cap: Int = 10_000, on client: PostgresClient, logger: Logger) async throws -> Int64 {
        // Without a place, from before the first job in claim order.
        let from = position ?? ClaimCursor.Position(priority: .min, runAt: .distantPast, id: .min)
        return try await client.checkedQuery("""
            SELECT count(*)::int8 FROM (
                SELECT 1 FROM \(identifier: jobsTable)
                WHERE state = 'available' AND queue = \(queue) AND run_at <= now()
                  AND (priority, run_at, id) > (\(from.priority)::int2, \(from.runAt)::timestamptz, \(from.id)::int8)
                LIMIT \(Int32(max(1, cap)))
            ) ready
            """, logger: logger).rows[0].decode(Int64.self)
    }

    /// Deletes completed and cancelled jobs (and dead ones if `includingDead`) that finished
    /// more than `retention` ago, at most `limit` per call from each of the completed table
    /// and the jobs table.
    ///
    /// - Returns: how many were deleted.
    @discardableResult
    public func prune(olderThan retention: Duration, includingDead: Bool = false, limit: Int = 10_000, on client: PostgresClient, logger: Logger) async throws -> Int {
        let seconds = Double(Backoff.milliseconds(retention)) / 1000
        let states = includingDead ? ["completed", "cancelled", "dead"] : ["completed", "cancelled"]
        let limit = Int32(max(1, limit))
        let rows = try await client.checkedQuery("""
            WITH old_completed AS (
                SELECT id FROM \(identifier: completedTable)
                WHERE finished_at < now() - \(seconds) * interval '1 second'
                LIMIT \(limit) FOR UPDATE SKIP LOCKED
            ), old_live AS (
                SELECT id FROM \(identifier: jobsTable)
                WHERE state = ANY(\(states)::text[]) AND finished_at < now() - \(seconds) * interval '1 second'
                LIMIT \(limit) FOR UPDATE SKIP LOCKED
            ), completed AS (
                DELETE FROM \(identifier: completedTable) j USING old_completed o WHERE j.id = o.id RETURNING j.id
            ), live AS (
                DELETE FROM \(identifier: jobsTable) j USING old_live o WHERE j.id = o.id RETURNING j.id
            )
            SELECT id FROM completed UNION ALL SELECT id FROM live
            """, logger: logger).rows
        return rows.count
    }

    /// Deletes start records of rate-limited jobs that no rate window can count any more
    /// (older than the longest period of any limit). Workers run it with their maintenance.
    @discardableResult
    public func pruneStarts(on client: PostgresClient, logger: Logger) async throws -> Int {
        try await client.checkedQuery("""
            DELETE FROM \(identifier: startsTable)
            WHERE started_at < now() - COALESCE((SELECT max(starts_period_ms) FROM \(identifier: limitsTable)), 0) * interval '1 millisecond'
            RETURNING 1
            """, logger: logger).rows.count
    }
}
