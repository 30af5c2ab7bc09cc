import Foundation
import Logging
import PostgresLocks
import PostgresNIO

extension JobQueue {
    /// Reads the ``QueueDashboard``: live counts per queue, kind and state, the last hour
    /// minute by minute (throughput, pickup latency, depth) for every queue or for `queue`
    /// alone, pauses, settings and schedules.
    ///
    /// Bounded by the live jobs and the last hour's finished ones, whatever the size of the
    /// completed archive.
    public func dashboard(queue: String? = nil, on client: PostgresClient, logger: Logger) async throws -> QueueDashboard {
        async let countRows = client.checkedQuery(dashboardCountsSQL, logger: logger).rows
        async let minuteRows = client.checkedQuery(dashboardMinutesSQL(queue: queue ?? ""), logger: logger).rows
        async let estimateRows = client.checkedQuery(
            "SELECT GREATEST(reltuples, 0)::int8 FROM pg_class WHERE oid = to_regclass(\(completedTable.quoted))", logger: logger
        ).rows
        async let schedules = self.schedules(on: client, logger: logger)
        async let controls = self.controls(on: client, logger: logger)
        var counts: [QueueDashboard.Count] = []
        for row in try await countRows {
            let (queue, kind, state, count) = try row.decode((String, String, String, Int64).self)
            if let state = JobState(rawValue: state) { counts.append(.init(queue: queue, kind: kind, state: state, count: count)) }
        }
        var minutes: [QueueDashboard.Minute] = []
        for row in try await minuteRows {
            let (start, completed, failed, pickup, depth) = try row.decode((Date, Int64, Int64, Double?, Int64).self)
            minutes.append(.init(start: start, completed: completed, failed: failed, pickupSeconds: pickup, depth: depth))
        }
        return QueueDashboard(
            counts: counts,
            completedEstimate: try await estimateRows.first?.decode(Int64.self) ?? 0,
            minutes: minutes,
            schedules: try await schedules,
            controls: try await controls
        )
    }

    /// Jobs matching `filter`, newest first, at most `limit` (1…1,000).
    ///
    /// Completed jobs are searched among the newest ``JobFilter/completedSearchDepth``
    /// only, and an error-text filter looks at live, dead and cancelled jobs only, so a list
    /// stays fast over an archive of millions.
    public func jobs(matching filter: JobFilter, limit: Int = 50, on client: PostgresClient, logger: Logger) async throws -> [JobSummary] {
        let state = filter.state?.rawValue ?? "", queue = filter.queue ?? "", kind = filter.kind ?? ""
        let error = filter.errorContains ?? "", before = filter.before ?? Int64.max
        let limit = Int32(max(1, min(limit, 1_000))), depth = Int32(JobFilter.completedSearchDepth)
        let searchCompleted = error.isEmpty && (state.isEmpty || state == JobState.completed.rawValue)
        // Each table is filtered and cut to the page on its own (newest first, by its primary
        // key), then the two pages are merged: a list never sorts a whole table.
        let rows = try await client.checkedQuery("""
            SELECT id, queue, kind, state, attempt, max_attempts, run_at, last_error, lease_owner FROM (
                (SELECT * FROM \(identifier: jobsTable)
                 WHERE id < \(before)
                   AND (\(state)::text = '' OR state = \(state))
                   AND (\(queue)::text = '' OR queue = \(queue))
                   AND (\(kind)::text = '' OR kind = \(kind))
                   AND (\(error)::text = '' OR strpos(lower(last_error), lower(\(error))) > 0)
                 ORDER BY id DESC LIMIT \(limit))
                UNION ALL
                (SELECT * FROM (
                    SELECT * FROM \(identifier: completedTable) WHERE \(searchCompleted) AND id < \(before) ORDER BY id DESC LIMIT \(depth)
                 ) newest_completed
                 WHERE (\(queue)::text = '' OR queue = \(queue))
                   AND (\(kind)::text = '' OR kind = \(kind))
                 ORDER BY id DESC LIMIT \(limit))
            ) j
            ORDER BY id DESC LIMIT \(limit)
            """, logger: logger).rows
        return try rows.map { row in
            let (id, queue, kind, state, attempt, maxAttempts, runAt, lastError, owner) =
                try row.decode((Int64, String, String, String, Int32, Int32, Date, String?, String?).self)
            return JobSummary(id: id, queue: queue, kind: kind, state: state, attempt: attempt, maxAttempts: maxAttempts, runAt: runAt, lastError: lastError, leaseOwner: owner)
        }
    }

    /// One job with everything known about it, or nil when there is none with this id.
    public func job(id: Int64, on client: PostgresClient, logger: Logger) async throws -> JobDetail? {
        let rows = try await client.checkedQuery("""
            SELECT id, queue, kind, state, payload::text, priority, attempt, max_attempts, last_error, lease_owner,
                   lease_expires_at, unique_key, created_at, run_at, attempted_at, finished_at
            FROM \(identifier: allJobsView) WHERE id = \(id)
            """, logger: logger).rows
        guard let row = rows.first else { return nil }
        let (id, queue, kind, state, payload, priority, attempt, maxAttempts, lastError, leaseOwner,
             leaseExpiresAt, uniqueKey, createdAt, runAt, attemptedAt, finishedAt) =
            try row.decode((Int64, String, String, String, String, Int16, Int32, Int32, String?, String?,
                            Date?, String?, Date, Date, Date?, Date?).self)
        return JobDetail(
            id: id, queue: queue, kind: kind, state: state, payload: payload, priority: priority, attempt: attempt,
            maxAttempts: maxAttempts, lastError: lastError, leaseOwner: leaseOwner, leaseExpiresAt: leaseExpiresAt,
            uniqueKey: uniqueKey, createdAt: createdAt, runAt: runAt, attemptedAt: attemptedAt, finishedAt: finishedAt
        )
    }

    /// Discards a job that is available or running: it becomes `dead` ("discarded by an
    /// operator") and is never retried by itself. A worker running it is told at once, as for
    /// ``cancel(id:on:logger:)``.
    ///
    /// - Returns: whether a job was changed.
    @discardableResult
    public func discard(id: Int64, on client: PostgresClient, logger: Logger) async throws -> Bool {
        try await !client.checkedQuery(stopStatement(id: id, state: .dead, error: Self.discardedError), logger: logger).rows.isEmpty
    }

    /// The last error of a discarded job (not counted as a failure).
    static let discardedError = "discarded by an operator"

    /// Live jobs per queue, kind and state, and completed ones of the last hour.
    private var dashboardCountsSQL: PostgresQuery {
        """
        SELECT queue, kind, state, sum(n)::int8 FROM (
            -- Completed jobs kept in the jobs table (their unique key covers the completed
            -- state) count with the archive's: the last hour only.
            SELECT queue, kind, state, count(*) AS n FROM \(identifier: jobsTable)
            WHERE state <> 'completed' OR finished_at >= now() - interval '1 hour'
            GROUP BY queue, kind, state
            UNION ALL
            SELECT queue, kind, 'completed', count(*) FROM \(identifier: completedTable)
            WHERE finished_at >= now() - interval '1 hour' GROUP BY queue, kind
        ) counts
        GROUP BY queue, kind, state
        ORDER BY 1, 2, 3
        """
    }

    /// The last hour by minute. The hour's start is written out where it is used (not read
    /// from a CTE), so the planner sees it and estimates the last hour's rows, not a third of
    /// the archive (which would also make it compile the plan to machine code, for half a
    /// second). Depth is rebuilt from the jobs that matter to it: those ready
    /// now and not picked up, and those picked up within the hour (+1 when a job became ready,
    /// or at the hour's start if earlier; −1 when it was picked up).
    private func dashboardMinutesSQL(queue: String) -> PostgresQuery {
        """
        WITH finished AS (
            SELECT 'completed' AS state, run_at, attempted_at, finished_at, last_error FROM \(identifier: completedTable)
            WHERE finished_at >= date_trunc('minute', now()) - interval '59 minutes' AND (\(queue)::text = '' OR queue = \(queue))
            UNION ALL
            SELECT state, run_at, attempted_at, finished_at, last_error FROM \(identifier: jobsTable)
            WHERE state IN ('completed', 'dead', 'cancelled') AND finished_at >= date_trunc('minute', now()) - interval '59 minutes'
              AND (\(queue)::text = '' OR queue = \(queue))
        ), picked AS (
            SELECT run_at, attempted_at FROM finished WHERE attempted_at >= date_trunc('minute', now()) - interval '59 minutes'
            UNION ALL
            SELECT run_at, attempted_at FROM \(identifier: jobsTable)
            WHERE state = 'running' AND attempted_at >= date_trunc('minute', now()) - interval '59 minutes'
              AND (\(queue)::text = '' OR queue = \(queue))
        ), events AS (
            SELECT GREATEST(run_at, date_trunc('minute', now()) - interval '59 minutes') AS at, 1 AS delta FROM picked WHERE run_at <= attempted_at
            UNION ALL
            SELECT attempted_at, -1 FROM picked WHERE run_at <= attempted_at
            UNION ALL
            SELECT GREATEST(run_at, date_trunc('minute', now()) - interval '59 minutes'), 1 FROM \(identifier: jobsTable)
            WHERE state = 'available' AND run_at <= now() AND (\(queue)::text = '' OR queue = \(queue))
        ), deltas AS (
            SELECT date_trunc('minute', at) AS minute, sum(delta)::int8 AS delta FROM events GROUP BY 1
        ), throughput AS (
            SELECT date_trunc('minute', finished_at) AS minute,
                   count(*) FILTER (WHERE state = 'completed')::int8 AS completed,
                   count(*) FILTER (WHERE state = 'dead' AND last_error IS DISTINCT FROM \(Self.discardedError))::int8 AS failed,
                   avg(EXTRACT(EPOCH FROM attempted_at - run_at)) FILTER (WHERE attempted_at >= run_at)::float8 AS pickup
            FROM finished GROUP BY 1
        )
        SELECT m.minute, COALESCE(t.completed, 0), COALESCE(t.failed, 0), t.pickup,
               GREATEST(0, sum(COALESCE(d.delta, 0)) OVER (ORDER BY m.minute))::int8
        FROM generate_series(date_trunc('minute', now()) - interval '59 minutes', date_trunc('minute', now()), interval '1 minute') AS m(minute)
        LEFT JOIN throughput t ON t.minute = m.minute
        LEFT JOIN deltas d ON d.minute = m.minute
        ORDER BY m.minute
        """
    }
}
