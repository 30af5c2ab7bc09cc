import Logging
import PostgresLocks
import PostgresNIO

extension JobQueue {
    /// Reclaims running jobs whose lease expired (their worker died or stopped heartbeating):
    /// they become available again (the attempt stays counted), or dead after their last
    /// attempt. Any number of workers may run it at once (`SKIP LOCKED`).
    public func reap(limit: Int = 1000, on client: PostgresClient, logger: Logger) async throws -> ReapResult {
        let rows = try await client.checkedQuery("""
            WITH expired AS (
                SELECT id FROM \(identifier: jobsTable)
                WHERE state = 'running' AND lease_expires_at < now()
                ORDER BY lease_expires_at LIMIT \(Int32(max(1, limit)))
                FOR NO KEY UPDATE SKIP LOCKED
            )
            UPDATE \(identifier: jobsTable) j
            SET state = CASE WHEN j.attempt >= j.max_attempts THEN 'dead' ELSE 'available' END,
                finished_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
                run_at = now(),
                last_error = 'lease expired: worker ' || COALESCE(j.lease_owner, '?') || ' stopped heartbeating',
                lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
            FROM expired WHERE j.id = expired.id
            RETURNING j.state
            """, logger: logger).rows
        var result = ReapResult(reclaimed: 0, dead: 0)
        for row in rows {
            if try row.decode(String.self) == JobState.dead.rawValue { result.dead += 1 } else { result.reclaimed += 1 }
        }
        if result.reclaimed + result.dead > 0 {
            logger.warning("reclaimed jobs with expired leases", metadata: ["reclaimed": "\(result.reclaimed)", "dead": "\(result.dead)"])
        }
        return result
    }

    /// Deletes completed and cancelled jobs (and dead ones if `includingDead`) that finished
    /// more than `retention` ago, at most `limit` per call.
    ///
    /// - Returns: how many were deleted.
    @discardableResult
    public func prune(olderThan retention: Duration, includingDead: Bool = false, limit: Int = 10_000, on client: PostgresClient, logger: Logger) async throws -> Int {
        let seconds = Double(Backoff.milliseconds(retention)) / 1000
        let states = includingDead ? ["completed", "cancelled", "dead"] : ["completed", "cancelled"]
        let rows = try await client.checkedQuery("""
            WITH old AS (
                SELECT id FROM \(identifier: jobsTable)
                WHERE state = ANY(\(states)::text[]) AND finished_at < now() - \(seconds) * interval '1 second'
                LIMIT \(Int32(max(1, limit))) FOR UPDATE SKIP LOCKED
            )
            DELETE FROM \(identifier: jobsTable) j USING old WHERE j.id = old.id RETURNING j.id
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
