import Logging
import PostgresLocks
import PostgresNIO
import PostgresQueue
import ServiceLifecycle
import Synchronization

/// The queue part of a soak run: jobs enqueued in batches, worked by `QueueWorker`s whose
/// handlers write a side effect and complete the job in one transaction.
package final class SoakQueueWork: Sendable {
    package struct Payload: Codable, Sendable {
        package var n: Int
    }

    package let queue: JobQueue
    package let workers: [QueueWorker]
    package let effects: QualifiedName
    package let jobsPerBatch: Int
    package let enqueueInterval: Duration
    package let confirmed = Mutex<Set<Int64>>([])
    package let logger: Logger

    package init(queue: JobQueue, workers: [QueueWorker], effects: QualifiedName, jobsPerBatch: Int, enqueueInterval: Duration, logger: Logger) {
        self.queue = queue
        self.workers = workers
        self.effects = effects
        self.jobsPerBatch = jobsPerBatch
        self.enqueueInterval = enqueueInterval
        self.logger = logger
    }

    /// Enqueues a batch every interval until `stop` is set.
    package func enqueue(until stop: SetOnceFlag, tallies: SoakTallies, classify: @Sendable (any Error) -> SoakErrorKind) async {
        var next = 0
        while !stop.isSet {
            // Back-pressure: keep the backlog small, so a long run drains in seconds at the end.
            let backlog = try? await workers[0].client.checkedQuery(
                "SELECT count(*) FROM \(identifier: queue.jobsTable) WHERE state IN ('available', 'running')", logger: logger
            ).rows[0].decode(Int64.self)
            if (backlog ?? Int64.max) >= Int64(jobsPerBatch * 10) {
                _ = await SetOnceFlag.sleep(enqueueInterval, unless: stop)
                continue
            }
            do {
                let jobs = try (next..<next + jobsPerBatch).map { try NewJob(kind: "soak", payload: Payload(n: $0), maxAttempts: 10_000) }
                next += jobsPerBatch
                let result = try await queue.enqueue(jobs, on: workers[0].client, logger: logger)
                confirmed.withLock { $0.formUnion(result.ids) }
                tallies.update { $0.jobsEnqueued += result.ids.count }
            } catch {
                // A batch whose outcome is unknown is judged by the table: every job in it must be done.
                switch classify(error) {
                case .fault: tallies.update { $0.retried += 1; $0.ambiguousCommits += 1 }
                default: tallies.unexpected(error, during: "enqueue")
                }
            }
            _ = await SetOnceFlag.sleep(enqueueInterval, unless: stop)
        }
    }

    /// Runs the workers while `body` runs, then shuts them down gracefully.
    package func withWorkers(_ body: () async throws -> Void) async throws {
        guard !workers.isEmpty else { return try await body() }
        var quiet = logger
        quiet.logLevel = .critical
        let group = ServiceGroup(services: workers, gracefulShutdownSignals: [], cancellationSignals: [], logger: quiet)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                try await body()
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    /// Waits until no job is waiting or running (or `timeout` passes).
    package func drain(timeout: Duration, context: SoakContext) async throws {
        guard !workers.isEmpty else { return }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let left = try? await context.client.checkedQuery(
                "SELECT count(*) FROM \(identifier: queue.jobsTable) WHERE state IN ('available', 'running')", logger: context.logger
            ).rows[0].decode(Int64.self)
            if left == 0 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Every job is completed, with exactly one side effect; no effect without its completed job;
    /// every confirmed job is there.
    package func check(_ context: SoakContext) async throws -> SoakFindings {
        var findings = SoakFindings()
        guard !workers.isEmpty else { return findings }
        let client = context.client, logger = context.logger
        var present = Set<Int64>()
        for row in try await client.checkedQuery("SELECT id, state::text FROM \(identifier: queue.allJobsView)", logger: logger).rows {
            let (id, state) = try row.decode((Int64, String).self)
            present.insert(id)
            if state != JobState.completed.rawValue { findings.lostJobs += 1 }
        }
        findings.lostJobs += confirmed.withLock { $0.subtracting(present).count }
        findings.duplicateEffects = Int(try await client.checkedQuery(
            "SELECT COALESCE(sum(n - 1), 0)::int8 FROM (SELECT count(*) AS n FROM \(identifier: effects) GROUP BY job) e", logger: logger
        ).rows[0].decode(Int64.self))
        findings.orphanEffects = Int(try await client.checkedQuery(
            "SELECT count(*) FROM \(identifier: effects) e WHERE NOT EXISTS (SELECT 1 FROM \(identifier: queue.allJobsView) j WHERE j.id = e.job AND j.state = 'completed')",
            logger: logger
        ).rows[0].decode(Int64.self))
        // A completed job without its effect is lost work too.
        findings.lostJobs += Int(try await client.checkedQuery(
            "SELECT count(*) FROM \(identifier: queue.allJobsView) j WHERE j.state = 'completed' AND NOT EXISTS (SELECT 1 FROM \(identifier: effects) e WHERE e.job = j.id)",
            logger: logger
        ).rows[0].decode(Int64.self))
        return findings
    }
}

extension SoakWorkload {
    /// Creates the queue's tables and its workers (none when queue work is off).
    package func makeQueueWork(_ context: SoakContext) async throws -> SoakQueueWork {
        let queue = try JobQueue(schema: queueSchema.name)
        let effects = table("effects")
        var workers: [QueueWorker] = []
        if configuration.queueWorkers > 0 && configuration.jobsPerBatch > 0 {
            try await queue.migrate(on: context.client, logger: context.logger)
            try await context.client.checkedQuery("CREATE TABLE \(identifier: effects) (job bigint NOT NULL, n int NOT NULL)", logger: context.logger)
            let tallies = self.tallies
            var handlers = JobHandlers()
            handlers.register("soak") { (payload: SoakQueueWork.Payload, job) in
                tallies.update { $0.handlerRuns += 1 }
                try await job.client.withCheckedTransaction(logger: job.logger) { tx in
                    try await tx.query("INSERT INTO \(identifier: effects) (job, n) VALUES (\(job.job.id), \(payload.n))")
                    try await job.complete(in: tx)
                }
            }
            let listen = context.settings
            var quiet = context.logger
            quiet.logLevel = .critical
            for _ in 0..<configuration.queueWorkers {
                workers.append(try QueueWorker(queue: queue, client: context.client, handlers: handlers, configuration: .init(
                    queue: "default", concurrency: configuration.queueConcurrency, claimBatchSize: 20, lease: .seconds(3),
                    pollInterval: .milliseconds(100), reapInterval: .milliseconds(250),
                    backoff: Backoff(initial: .milliseconds(20), maximum: .milliseconds(200)),
                    retention: nil, shutdownGracePeriod: .seconds(5), listen: listen
                ), logger: quiet))
            }
        }
        return SoakQueueWork(
            queue: queue, workers: workers, effects: effects, jobsPerBatch: configuration.jobsPerBatch,
            enqueueInterval: configuration.enqueueInterval, logger: context.logger
        )
    }
}
