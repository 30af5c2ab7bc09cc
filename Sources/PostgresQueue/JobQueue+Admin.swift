import Foundation
import Logging
import PostgresLocks
import PostgresNIO

extension JobQueue {
    /// Job counts per queue and state (live jobs and completed ones alike).
    public func stats(on client: PostgresClient, logger: Logger) async throws -> QueueStats {
        let rows = try await client.checkedQuery("""
            SELECT queue, state, count(*)::int8,
                   count(*) FILTER (WHERE state = 'available' AND run_at <= now())::int8,
                   EXTRACT(EPOCH FROM now() - min(run_at) FILTER (WHERE state = 'available' AND run_at <= now()))::float8
            FROM \(identifier: allJobsView) GROUP BY queue, state ORDER BY queue, state
            """, logger: logger).rows
        var byQueue: [String: QueueStats.Row] = [:]
        for row in rows {
            let (queue, state, count, ready, oldest) = try row.decode((String, String, Int64, Int64, Double?).self)
            var entry = byQueue[queue] ?? QueueStats.Row(queue: queue, counts: [:], ready: 0, oldestReadySeconds: nil)
            entry.counts[state] = count
            entry.ready += ready
            if let oldest { entry.oldestReadySeconds = max(entry.oldestReadySeconds ?? 0, oldest) }
            byQueue[queue] = entry
        }
        return QueueStats(queues: byQueue.values.sorted { $0.queue < $1.queue })
    }

    /// Jobs, newest first, optionally of one state and queue.
    public func list(state: JobState? = nil, queue: String? = nil, limit: Int = 50, on client: PostgresClient, logger: Logger) async throws -> [JobSummary] {
        let rows = try await client.checkedQuery("""
            SELECT id, queue, kind, state, attempt, max_attempts, run_at, last_error, lease_owner
            FROM \(identifier: allJobsView)
            WHERE (\(state?.rawValue ?? "")::text = '' OR state = \(state?.rawValue ?? ""))
              AND (\(queue ?? "")::text = '' OR queue = \(queue ?? ""))
            ORDER BY id DESC LIMIT \(Int32(max(1, min(limit, 10_000))))
            """, logger: logger).rows
        return try rows.map { row in
            let (id, queue, kind, state, attempt, maxAttempts, runAt, lastError, owner) =
                try row.decode((Int64, String, String, String, Int32, Int32, Date, String?, String?).self)
            return JobSummary(id: id, queue: queue, kind: kind, state: state, attempt: attempt, maxAttempts: maxAttempts, runAt: runAt, lastError: lastError, leaseOwner: owner)
        }
    }

    /// Makes a dead or cancelled job available again now (allowing it one more attempt if it
    /// had used them all).
    ///
    /// - Returns: whether a job was changed.
    @discardableResult
    public func retry(id: Int64, on client: PostgresClient, logger: Logger) async throws -> Bool {
        try await !client.checkedQuery("""
            UPDATE \(identifier: jobsTable)
            SET state = 'available', run_at = now(), finished_at = NULL, max_attempts = GREATEST(max_attempts, attempt + 1)
            WHERE id = \(id) AND state IN ('dead', 'cancelled')
            RETURNING id
            """, logger: logger).rows.isEmpty
    }

    /// Cancels a job that is available or running. The worker running it is told at once (a
    /// `NOTIFY` on the control channel, delivered when this commits) and cancels the job's task;
    /// a worker that was not listening finds the lease gone at its next heartbeat. Nothing the
    /// job reports afterwards is recorded.
    ///
    /// - Returns: whether a job was changed.
    @discardableResult
    public func cancel(id: Int64, on client: PostgresClient, logger: Logger) async throws -> Bool {
        try await !client.checkedQuery(stopStatement(id: id, state: .cancelled, error: nil), logger: logger).rows.isEmpty
    }

    /// Ends an available or running job in `state` (cancelled, or dead for a discard), its
    /// lease gone, and tells the worker running it (a `NOTIFY` on the control channel,
    /// delivered at commit). `error` replaces the last error; nil keeps it, or says
    /// "cancelled by an operator" when there was none.
    func stopStatement(id: Int64, state: JobState, error: String?) -> PostgresQuery {
        let message = QueueControlMessage.cancelled(jobID: id).payload
        return """
            WITH stopped AS (
                UPDATE \(identifier: jobsTable)
                SET state = \(state.rawValue), finished_at = now(), last_error = COALESCE(\(error), last_error, 'cancelled by an operator'),
                    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
                WHERE id = \(id) AND state IN ('available', 'running')
                RETURNING id
            )
            SELECT pg_notify(\(controlChannel.name), \(message)) FROM stopped
            """
    }

    /// Deletes every job in `states` (default: the finished ones), optionally of one queue,
    /// from the jobs table and the completed table, in one statement.
    ///
    /// - Returns: how many were deleted.
    @discardableResult
    public func purge(states: [JobState] = JobState.finished, queue: String? = nil, on client: PostgresClient, logger: Logger) async throws -> Int {
        guard !states.isEmpty else { throw PostgresLocksError(code: .invalidArgument, message: "purge needs at least one state") }
        let names = states.map(\.rawValue), queue = queue ?? ""
        return try await client.checkedQuery("""
            WITH live AS (
                DELETE FROM \(identifier: jobsTable)
                WHERE state = ANY(\(names)::text[]) AND (\(queue)::text = '' OR queue = \(queue))
                RETURNING id
            ), completed AS (
                DELETE FROM \(identifier: completedTable)
                WHERE state = ANY(\(names)::text[]) AND (\(queue)::text = '' OR queue = \(queue))
                RETURNING id
            )
            SELECT id FROM live UNION ALL SELECT id FROM completed
            """, logger: logger).rows.count
    }
}
