import Foundation
import Logging
import PostgresLocks
import PostgresNIO
import PostgresQueue
import ServiceLifecycle
import Subprocess
import PglockHarness
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// The job queue: workers drain jobs while a separate worker process holding a job is
/// killed with SIGKILL; its lease expires, the job is reclaimed, and every job is done once.
///
/// Lost connections: enqueues and each handler's side effect + completion are retrying
/// transactions (``RetryPolicy/resolvingCommitOutcome``), so a job's effect commits once; the
/// workers retry claims, heartbeats and completions themselves, and a claim whose answer was
/// lost is reclaimed by the reaper when its lease expires (its attempt count then grows).
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
        return try await context.withScratchQueue(schema: schema) { queue in
            let effects = try QualifiedName(schema: schema, "effects")
            try await context.idempotentQuery("CREATE TABLE IF NOT EXISTS \(identifier: effects) (job bigint NOT NULL, n int NOT NULL)")

            // A worker in another process takes one job and is killed while holding it.
            context.progress.step("\(name): a separate worker process claims a job; killing it with SIGKILL")
            let held = try await context.transaction { tx in
                try await queue.enqueue(try NewJob(kind: "hold", payloadJSON: "{}"), in: tx).ids[0]
            }
            var killedWorkerHeld = false
            var workerStarts = 0
            let holdDeadline = ContinuousClock.now + .seconds(60)
            while !killedWorkerHeld && ContinuousClock.now < holdDeadline {
                // A worker process that could not connect (a server restarting) is started again.
                if workerStarts > 0 {
                    context.faults.connectionLost()
                    try await Task.sleep(for: .milliseconds(500))
                }
                workerStarts += 1
                killedWorkerHeld = try await killWorkerHolding(schema: schema, settings: context.settings)
            }

            context.progress.step("\(name): \(workers) workers drain \(jobs) jobs (side effect and completion in one transaction)")
            var handlers = JobHandlers()
            handlers.register("work") { (payload: Payload, job) in
                try await context.transaction { tx in
                    try await tx.query("INSERT INTO \(identifier: effects) VALUES (\(job.job.id), \(payload.n))")
                    try await job.complete(in: tx)
                }
            }
            handlers.register("hold") { (_: [String: String], job) in
                try await context.transaction { tx in
                    try await tx.query("INSERT INTO \(identifier: effects) VALUES (\(job.job.id), -1)")
                    try await job.complete(in: tx)
                }
            }
            // The workers log each claim or heartbeat a lost connection broke; they are expected here.
            let workerList = try (0..<workers).map { index in
                try QueueWorker(queue: queue, client: client, handlers: handlers, configuration: .init(
                    queue: "default", concurrency: 8, claimBatchSize: 50, lease: .seconds(5), pollInterval: .milliseconds(50),
                    reapInterval: .milliseconds(200), owner: "demo-\(index)"
                ), logger: context.quietLogger)
            }
            let started = ContinuousClock.now
            let jobs = self.jobs
            let finished = try await withRunningServices(workerList, logger: logger) {
                for batch in stride(from: 0, to: jobs, by: 1000) {
                    let newJobs = try (batch..<min(batch + 1000, jobs)).map { try NewJob(kind: "work", payload: Payload(n: $0)) }
                    try await context.transaction { tx in _ = try await queue.enqueue(newJobs, in: tx) }
                }
                // Done when every job completed; given up when no job completed for 20 s (a stall,
                // not a slow machine or a pooler in between) or after 5 minutes.
                let giveUp = ContinuousClock.now + .seconds(300)
                var lastProgress = ContinuousClock.now
                var lastCompleted: Int64 = -1
                while ContinuousClock.now < giveUp && ContinuousClock.now - lastProgress < .seconds(20) {
                    let completed = try await context.idempotentQuery("SELECT count(*)::int8 FROM \(identifier: queue.allJobsView) WHERE state = 'completed'").rows[0].decode(Int64.self)
                    if completed == Int64(jobs + 1) { return true }
                    if completed != lastCompleted { lastCompleted = completed; lastProgress = .now }
                    try await Task.sleep(for: .milliseconds(50))
                }
                return false
            }
            let elapsed = ContinuousClock.now - started
            let (count, distinctJobs, distinctN) = try await context.idempotentQuery(
                "SELECT count(*)::int8, count(DISTINCT job)::int8, count(DISTINCT n)::int8 FROM \(identifier: effects)"
            ).rows[0].decode((Int64, Int64, Int64).self)
            let heldAttempts = try await context.idempotentQuery("SELECT attempt FROM \(identifier: queue.allJobsView) WHERE id = \(held)").rows[0].decode(Int32.self)
            let heldText = killedWorkerHeld
                ? "killed worker's job reclaimed, attempt \(heldAttempts)"
                : "no worker process held the job within 60 s (\(workerStarts) started)"
            let detail = "\(count) side effects for \(jobs + 1) jobs (\(count - distinctJobs) duplicates); \(heldText)"
            context.progress.done(detail)
            return [
                outcome(
                    "every job once, killed worker's job reclaimed",
                    passed: finished && killedWorkerHeld && count == Int64(jobs + 1) && distinctJobs == count && distinctN == Int64(jobs + 1) && heldAttempts >= 2,
                    detail: detail
                ).rate(jobs, per: elapsed, unit: "jobs/s"),
            ]
        }
    }

    /// Starts `pglock queue work` (this executable) holding the `hold` job, waits until it
    /// holds it (at most 30 s), and kills it with SIGKILL. Returns whether it held the job.
    private func killWorkerHolding(schema: String, settings: ConnectionSettings) async throws -> Bool {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        var withoutPassword = settings
        withoutPassword.password = nil  // given through PGPASSWORD instead of the command line
        withoutPassword.applicationName = nil  // its own name ("pglock queue"): it is killed here, not by outside faults
        let result = try await Subprocess.run(
            .path(FilePath(executable)),
            arguments: ["queue", "work", "--database-url", withoutPassword.redactedURL, "--schema", schema, "--lease", "1s"],
            environment: .inherit.updating(settings.password.map { ["PGPASSWORD": $0] } ?? [:]),
            input: .none, output: .sequence, error: .discarded
        ) { execution in
            // The first line, or nothing if none comes within 30 s (the process is killed either way).
            let line = try await withThrowingTaskGroup(of: String?.self) { group in
                group.addTask { try await firstLine(of: execution.standardOutput) }
                group.addTask {
                    try await Task.sleep(for: .seconds(30))
                    try? execution.send(signal: .kill)  // ends the output, and with it the reader
                    return nil
                }
                defer { group.cancelAll() }
                return try await group.next() ?? nil
            }
            try? execution.send(signal: .kill)
            return line?.hasPrefix("holding ") ?? false
        }
        return result.closureResult
    }
}
