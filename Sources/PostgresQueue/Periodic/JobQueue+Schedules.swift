import Foundation
import Logging
import PostgresLocks
import PostgresNIO

extension JobQueue {
    /// The periodic schedules a scheduler's leader has recorded, with their last and next ticks.
    public func schedules(on client: PostgresClient, logger: Logger) async throws -> [ScheduleSummary] {
        try await client.checkedQuery("""
            SELECT name, schedule, queue, kind, missed_ticks, last_tick, next_tick, last_job_id, term, updated_at
            FROM \(identifier: schedulesTable) ORDER BY name
            """, logger: logger).rows.map { row in
            let (name, schedule, queue, kind, missed, last, next, job, term, updated) =
                try row.decode((String, String, String, String, String, Date?, Date?, Int64?, Int64?, Date).self)
            return ScheduleSummary(
                name: name, schedule: schedule, queue: queue, kind: kind, missedTicks: missed,
                lastTick: last, nextTick: next, lastJobID: job, term: term, updatedAt: updated
            )
        }
    }

    /// Records the schedules as this leader runs them, and returns each one's last tick.
    func recordSchedules(_ schedules: [PeriodicJob], token: FencingToken, on client: PostgresClient, logger: Logger) async throws -> [String: Date] {
        var names: [String] = [], texts: [String] = [], queues: [String] = [], kinds: [String] = [], policies: [String] = []
        for schedule in schedules {
            // The job made for "now" only names the queue and kind shown by `pglock queue schedules`.
            let sample = try schedule.job(for: Date())
            names.append(schedule.name); texts.append(schedule.schedule.description)
            queues.append(sample.queue); kinds.append(sample.kind); policies.append("\(schedule.missedTicks)")
        }
        return try await client.withCheckedTransaction(logger: logger) { tx in
            try await tx.requireCurrentTerm(token)
            let rows = try await tx.query("""
                INSERT INTO \(identifier: schedulesTable) AS s (name, schedule, queue, kind, missed_ticks)
                SELECT * FROM unnest(\(names)::text[], \(texts)::text[], \(queues)::text[], \(kinds)::text[], \(policies)::text[])
                ON CONFLICT (name) DO UPDATE
                SET schedule = EXCLUDED.schedule, queue = EXCLUDED.queue, kind = EXCLUDED.kind,
                    missed_ticks = EXCLUDED.missed_ticks, updated_at = now()
                RETURNING s.name, s.last_tick
                """).rows
            var last: [String: Date] = [:]
            for row in rows {
                let (name, tick) = try row.decode((String, Date?).self)
                if let tick { last[name] = tick }
            }
            return last
        }
    }

    /// Enqueues the job of one tick, once: the tick's row (primary key schedule and tick) and
    /// the job are written in one transaction that first checks `token` is still the current
    /// term, so a deposed leader writes nothing and two leaders never enqueue the same tick.
    ///
    /// - Returns: the job's id, or `nil` when the tick was already enqueued (or its job was
    ///   skipped as a duplicate by its own uniqueness).
    func enqueueTick(_ tick: Date, of schedule: PeriodicJob, next: Date?, token: FencingToken, on client: PostgresClient, logger: Logger) async throws -> Int64? {
        let job = try schedule.job(for: tick)
        let name = schedule.name
        return try await client.withCheckedTransaction(logger: logger) { tx in
            try await tx.requireCurrentTerm(token)
            let claimed = try await tx.query("""
                INSERT INTO \(identifier: ticksTable) (schedule, tick, term) VALUES (\(name), \(tick), \(token.term))
                ON CONFLICT (schedule, tick) DO NOTHING RETURNING tick
                """).rows
            var id: Int64?
            if !claimed.isEmpty {
                id = try await self.enqueue(job, in: tx).ids.first
                try await tx.query("UPDATE \(identifier: ticksTable) SET job_id = \(id) WHERE schedule = \(name) AND tick = \(tick)")
            }
            try await tx.query("""
                UPDATE \(identifier: schedulesTable)
                SET last_tick = GREATEST(last_tick, \(tick)), next_tick = \(next),
                    last_job_id = COALESCE(\(id), last_job_id), term = \(token.term), updated_at = now()
                WHERE name = \(name)
                """)
            return id
        }
    }

    /// Stores a schedule's next tick (when nothing was due).
    func recordNextTick(_ next: Date?, of schedule: PeriodicJob, token: FencingToken, on client: PostgresClient, logger: Logger) async throws {
        try await client.withCheckedTransaction(logger: logger) { tx in
            try await tx.requireCurrentTerm(token)
            try await tx.query("""
                UPDATE \(identifier: schedulesTable) SET next_tick = \(next), term = \(token.term), updated_at = now()
                WHERE name = \(schedule.name)
                """)
        }
    }

    /// Deletes tick records older than `retention`, keeping each schedule's newest.
    @discardableResult
    func pruneTicks(olderThan retention: Duration, on client: PostgresClient, logger: Logger) async throws -> Int {
        let seconds = Double(Backoff.milliseconds(retention)) / 1000
        return try await client.checkedQuery("""
            DELETE FROM \(identifier: ticksTable) t
            WHERE t.enqueued_at < now() - \(seconds) * interval '1 second'
              AND t.tick < (SELECT max(tick) FROM \(identifier: ticksTable) n WHERE n.schedule = t.schedule)
            RETURNING 1
            """, logger: logger).rows.count
    }
}
