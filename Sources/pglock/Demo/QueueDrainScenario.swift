import Foundation
import Logging
import PostgresLocks
import PostgresNIO
import PostgresQueue
import ServiceLifecycle
import Subprocess
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Seed 004's queue: workers drain jobs while a separate worker process holding a job is
/// killed with SIGKILL; its lease expires, the job is reclaimed, and every job is done once.
struct QueueDrainScenario: DemoScenario {
    var name: String { "queue drain" }
    var jobs = 5_000
    var workers = 4

    struct Payload: Codable, Sendable {
        var n: Int
    }

    func run(context: DemoContext) async throws -> [ScenarioOutcome] {
        let logger = context.logger, client = context.client
        let schema = "pglock_demo_queue"
        try await client.checkedQuery("DROP SCHEMA IF EXISTS \(identifier: try SQLIdentifier(schema)) CASCADE", logger: logger)
        let queue = try JobQueue(schema: schema)
        try await queue.migrate(on: client, logger: logger)
        let effects = try QualifiedName(schema: schema, "effects")
        try await client.checkedQuery("CREATE TABLE \(identifier: effects) (job bigint NOT NULL, n int NOT NULL)", logger: logger)

        // A worker in another process takes one job and is killed while holding it.
        context.progress.step("\(name): a separate worker process claims a job; killing it with SIGKILL")
        let held = try await queue.enqueue(try NewJob(kind: "hold", payloadJSON: "{}"), on: client, logger: logger).ids[0]
        let killedWorkerHeld = try await killWorkerHolding(schema: schema, settings: context.settings)

        context.progress.step("\(name): \(workers) workers drain \(jobs) jobs (side effect and completion in one transaction)")
        var handlers = JobHandlers()
        handlers.register("work") { (payload: Payload, job) in
            try await job.client.withCheckedTransaction(logger: logger) { tx in
                try await tx.query("INSERT INTO \(identifier: effects) VALUES (\(job.job.id), \(payload.n))")
                try await job.complete(in: tx)
            }
        }
        handlers.register("hold") { (_: [String: String], job) in
            try await job.client.withCheckedTransaction(logger: logger) { tx in
                try await tx.query("INSERT INTO \(identifier: effects) VALUES (\(job.job.id), -1)")
                try await job.complete(in: tx)
            }
        }
        let workerList = (0..<workers).map { index in
            QueueWorker(queue: queue, client: client, handlers: handlers, configuration: .init(
                queue: "default", concurrency: 8, claimBatchSize: 50, lease: .seconds(5), pollInterval: .milliseconds(50),
                reapInterval: .milliseconds(200), owner: "demo-\(index)"
            ), logger: logger)
        }
        let started = ContinuousClock.now
        let group = ServiceGroup(services: workerList, gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
        let finished: Bool = try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            for batch in stride(from: 0, to: jobs, by: 1000) {
                try await queue.enqueue((batch..<min(batch + 1000, jobs)).map { try NewJob(kind: "work", payload: Payload(n: $0)) }, on: client, logger: logger)
            }
            let deadline = ContinuousClock.now + .seconds(30)
            var done = false
            while ContinuousClock.now < deadline {
                let completed = try await client.checkedQuery("SELECT count(*)::int8 FROM \(identifier: queue.jobsTable) WHERE state = 'completed'", logger: logger).rows[0].decode(Int64.self)
                if completed == Int64(jobs + 1) { done = true; break }
                try await Task.sleep(for: .milliseconds(50))
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return done
        }
        let elapsed = ContinuousClock.now - started
        let (count, distinctJobs, distinctN) = try await client.checkedQuery(
            "SELECT count(*)::int8, count(DISTINCT job)::int8, count(DISTINCT n)::int8 FROM \(identifier: effects)", logger: logger
        ).rows[0].decode((Int64, Int64, Int64).self)
        let heldAttempts = try await client.checkedQuery("SELECT attempt FROM \(identifier: queue.jobsTable) WHERE id = \(held)", logger: logger).rows[0].decode(Int32.self)
        if !context.keepTables {
            try await client.checkedQuery("DROP SCHEMA IF EXISTS \(identifier: try SQLIdentifier(schema)) CASCADE", logger: logger)
        }
        let detail = "\(count) side effects for \(jobs + 1) jobs (\(count - distinctJobs) duplicates); killed worker's job reclaimed, attempt \(heldAttempts)"
        context.progress.done(detail)
        return [ScenarioOutcome(
            scenario: name, check: "every job once, killed worker's job reclaimed",
            passed: finished && killedWorkerHeld && count == Int64(jobs + 1) && distinctJobs == count && distinctN == Int64(jobs + 1) && heldAttempts == 2,
            detail: detail, throughput: Double(jobs) / seconds(elapsed), unit: "jobs/s"
        )]
    }

    /// Starts `pglock queue work` (this executable) holding the `hold` job, waits until it
    /// holds it, and kills it with SIGKILL.
    private func killWorkerHolding(schema: String, settings: ConnectionSettings) async throws -> Bool {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        var withoutPassword = settings
        withoutPassword.password = nil  // given through PGPASSWORD instead of the command line
        let result = try await Subprocess.run(
            .path(FilePath(executable)),
            arguments: ["queue", "work", "--database-url", withoutPassword.redactedURL, "--schema", schema, "--lease", "1s"],
            environment: .inherit.updating(settings.password.map { ["PGPASSWORD": $0] } ?? [:]),
            input: .none, output: .sequence, error: .discarded
        ) { execution in
            let line = try await firstLine(of: execution.standardOutput)
            try execution.send(signal: .kill)
            return line.hasPrefix("holding ")
        }
        return result.closureResult
    }
}
