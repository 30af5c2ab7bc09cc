import Foundation
import Logging
import PostgresLocks
import PostgresNIO

extension JobQueue {
    /// A queue's runtime settings: paused, per-worker concurrency, fleet-wide limits.
    public func control(of queue: String, on client: PostgresClient, logger: Logger) async throws -> QueueControl {
        try NewJob.validateName(queue, what: "queue name")
        let rows = try await client.checkedQuery("""
            SELECT n.name, q.paused, q.concurrency, q.limited, l.kind, l.max_running, l.max_starts, l.starts_period_ms
            FROM (SELECT \(queue)::text AS name) n
            LEFT JOIN \(identifier: queuesTable) q ON q.name = n.name
            LEFT JOIN \(identifier: limitsTable) l ON l.queue = n.name
            ORDER BY l.kind
            """, logger: logger).rows
        return try Self.controls(from: rows).first ?? .unchanged(queue)
    }

    /// The stored settings of every queue that has any (a row in the queues or limits table),
    /// by name, in one statement.
    public func controls(on client: PostgresClient, logger: Logger) async throws -> [QueueControl] {
        let rows = try await client.checkedQuery("""
            SELECT n.name, q.paused, q.concurrency, q.limited, l.kind, l.max_running, l.max_starts, l.starts_period_ms
            FROM (SELECT name FROM \(identifier: queuesTable) UNION SELECT queue FROM \(identifier: limitsTable)) n
            LEFT JOIN \(identifier: queuesTable) q ON q.name = n.name
            LEFT JOIN \(identifier: limitsTable) l ON l.queue = n.name
            ORDER BY n.name, l.kind
            """, logger: logger).rows
        return try Self.controls(from: rows)
    }

    /// Folds rows of (name, paused, concurrency, limited, kind, max_running, max_starts,
    /// starts_period_ms), ordered by name, into one control per queue.
    static func controls(from rows: some Sequence<PostgresRow>) throws -> [QueueControl] {
        var controls: [QueueControl] = []
        for row in rows {
            let (name, paused, concurrency, limited, kind, maxRunning, maxStarts, periodMS) =
                try row.decode((String, Bool?, Int32?, Bool?, String?, Int32?, Int32?, Int64?).self)
            if controls.last?.queue != name { controls.append(.unchanged(name)) }
            controls[controls.count - 1].paused = paused ?? false
            controls[controls.count - 1].concurrency = concurrency.map(Int.init)
            controls[controls.count - 1].limited = limited ?? false
            if let kind {
                controls[controls.count - 1].limits.append(JobLimits(
                    kind: kind.isEmpty ? nil : kind, maxRunning: maxRunning.map(Int.init),
                    rate: maxStarts.flatMap { starts in periodMS.map { JobLimits.Rate(Int(starts), per: .milliseconds($0)) } }
                ))
            }
        }
        return controls
    }

    /// Pauses `queue`: from the moment this commits no claim takes a job from it (the claim
    /// statements read the stored state), and listening workers are told at once. Running
    /// jobs go on. Idempotent.
    public func pause(_ queue: String, on client: PostgresClient, logger: Logger) async throws {
        try await changeControl(queue, message: .paused(queue: queue), on: client, logger: logger) { tx in
            try await tx.query("""
                INSERT INTO \(identifier: queuesTable) (name, paused) VALUES (\(queue), true)
                ON CONFLICT (name) DO UPDATE SET paused = true, updated_at = now()
                """)
        }
    }

    /// Resumes a paused `queue`; listening workers claim at once. Idempotent.
    public func resume(_ queue: String, on client: PostgresClient, logger: Logger) async throws {
        try await changeControl(queue, message: .resumed(queue: queue), on: client, logger: logger) { tx in
            try await tx.query("""
                UPDATE \(identifier: queuesTable) SET paused = false, updated_at = now() WHERE name = \(queue)
                """)
        }
    }

    /// Sets how many jobs each worker of `queue` runs at once, replacing their configured
    /// concurrency (`nil` gives each worker its own setting back). Workers adopt it at once.
    public func setConcurrency(_ concurrency: Int?, of queue: String, on client: PostgresClient, logger: Logger) async throws {
        if let concurrency, !(1...10_000).contains(concurrency) {
            throw PostgresLocksError(code: .invalidArgument, message: "concurrency must be from 1 to 10000; found \(concurrency)")
        }
        let value = concurrency.map(Int32.init)
        try await changeControl(queue, message: .settingsChanged(queue: queue), on: client, logger: logger) { tx in
            try await tx.query("""
                INSERT INTO \(identifier: queuesTable) (name, concurrency) VALUES (\(queue), \(value))
                ON CONFLICT (name) DO UPDATE SET concurrency = EXCLUDED.concurrency, updated_at = now()
                """)
        }
    }

    /// Sets fleet-wide limits on `queue` (``JobLimits/kind`` `nil`) or on one kind of job in
    /// it, replacing that kind's earlier limits. Claims that start after this commits obey
    /// them, in every worker and process.
    public func setLimits(_ limits: JobLimits, queue: String, on client: PostgresClient, logger: Logger) async throws {
        try limits.validate()
        let kind = limits.kind ?? ""
        let maxRunning = limits.maxRunning.map(Int32.init)
        let maxStarts = limits.rate.map { Int32($0.starts) }
        let period = limits.rate.map { Backoff.milliseconds($0.period) }
        try await changeControl(queue, message: .settingsChanged(queue: queue), on: client, logger: logger) { tx in
            try await tx.query("""
                INSERT INTO \(identifier: limitsTable) (queue, kind, max_running, max_starts, starts_period_ms)
                VALUES (\(queue), \(kind), \(maxRunning), \(maxStarts), \(period))
                ON CONFLICT (queue, kind) DO UPDATE
                SET max_running = EXCLUDED.max_running, max_starts = EXCLUDED.max_starts, starts_period_ms = EXCLUDED.starts_period_ms
                """)
            try await self.markLimited(queue, in: tx)
        }
    }

    /// Lifts the limits on `kind` of `queue` (`nil`: the queue-wide limits).
    public func removeLimits(queue: String, kind: String? = nil, on client: PostgresClient, logger: Logger) async throws {
        if let kind { try NewJob.validateName(kind, what: "job kind") }
        try await changeControl(queue, message: .settingsChanged(queue: queue), on: client, logger: logger) { tx in
            try await tx.query("DELETE FROM \(identifier: limitsTable) WHERE queue = \(queue) AND kind = \(kind ?? "")")
            try await self.markLimited(queue, in: tx)
        }
    }

    /// Keeps the queue's `limited` flag (read by the fast claim) equal to "has limits".
    private func markLimited(_ queue: String, in tx: Transaction) async throws {
        try await tx.query("""
            INSERT INTO \(identifier: queuesTable) (name, limited)
            VALUES (\(queue), EXISTS (SELECT 1 FROM \(identifier: limitsTable) WHERE queue = \(queue)))
            ON CONFLICT (name) DO UPDATE SET limited = EXCLUDED.limited, updated_at = now()
            """)
    }

    /// Runs `change` in a transaction that also notifies the control channel (delivered at commit).
    private func changeControl(
        _ queue: String,
        message: QueueControlMessage,
        on client: PostgresClient,
        logger: Logger,
        _ change: @escaping @Sendable (Transaction) async throws -> Void
    ) async throws {
        try NewJob.validateName(queue, what: "queue name")
        try await client.withCheckedTransaction(logger: logger) { tx in
            try await change(tx)
            try await tx.query("SELECT pg_notify(\(controlChannel.name), \(message.payload))")
        }
        logger.info("queue control changed", metadata: ["queue": "\(queue)", "change": "\(message)"])
    }
}
