import Foundation
import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO
import PostgresQueue
import ServiceLifecycle

/// A fleet-wide limit: four workers, each free to run eight jobs at once, share a queue whose
/// `report` kind may run at most three at a time across all of them (the claim enforces it),
/// beside an unlimited kind. The running count is sampled from the database throughout.
struct FleetLimitScenario: DemoScenario {
    var name: String { "fleet limit" }
    /// Workers, the fleet-wide limit of the `report` kind, and jobs enqueued of each kind.
    var workers = 4, limit = 3, jobsPerKind = 150

    struct Report: JobDefinition {
        static let kind = "report"
        var milliseconds: Int
    }

    struct Thumbnail: JobDefinition {
        static let kind = "thumbnail"
        var milliseconds: Int
    }

    func run(context: DemoContext) async throws -> [ScenarioOutcome] {
        let logger = context.logger, client = context.client
        return try await context.withScratchQueue(schema: "pglock_demo_limits") { queue in
            try await context.idempotent {
                try await queue.setLimits(JobLimits(kind: Report.kind, maxRunning: limit), queue: "default", on: client, logger: logger)
            }
            var handlers = JobHandlers()
            handlers.register(Report.self) { job, _ in try await Task.sleep(for: .milliseconds(job.milliseconds)) }
            handlers.register(Thumbnail.self) { job, _ in try await Task.sleep(for: .milliseconds(job.milliseconds)) }
            let workerList = try (0..<workers).map { index in
                try QueueWorker(queue: queue, client: client, handlers: handlers, configuration: .init(
                    queue: "default", concurrency: 8, lease: .seconds(5), pollInterval: .milliseconds(20), reapInterval: .milliseconds(200), owner: "demo-\(index)"
                ), logger: context.quietLogger)
            }

            context.progress.step("\(name): \(workers) workers × 8; at most \(limit) '\(Report.kind)' jobs running fleet-wide, sampled from the database")
            let jobs = try (0..<jobsPerKind).flatMap { n in
                [try NewJob(Report(milliseconds: 10 + n % 20)), try NewJob(Thumbnail(milliseconds: 10 + n % 20))]
            }
            let started = ContinuousClock.now
            var maxReports = 0, maxThumbnails = 0, samples = 0
            let done = try await withRunningServices(workerList, logger: logger) {
                try await context.transaction { tx in _ = try await queue.enqueue(jobs, in: tx) }
                return try await waitFor(context, seconds: 120) {
                    let (reports, thumbnails, unfinished) = try await context.idempotentQuery("""
                        SELECT count(*) FILTER (WHERE state = 'running' AND kind = \(Report.kind))::int,
                               count(*) FILTER (WHERE state = 'running' AND kind = \(Thumbnail.kind))::int,
                               count(*) FILTER (WHERE state <> 'completed')::int
                        FROM \(identifier: queue.jobsTable)
                        """).rows[0].decode((Int, Int, Int).self)
                    maxReports = max(maxReports, reports)
                    maxThumbnails = max(maxThumbnails, thumbnails)
                    samples += 1
                    return unfinished == 0
                }
            }
            let elapsed = ContinuousClock.now - started
            let detail = "at most \(maxReports) '\(Report.kind)' running (limit \(limit)), at most \(maxThumbnails) unlimited; \(samples) samples; \(jobs.count) jobs \(done ? "done" : "NOT done")"
            context.progress.done(detail)
            return [
                outcome("never more than \(limit) running fleet-wide", passed: done && maxReports <= limit && maxReports >= 1, detail: detail)
                    .rate(jobs.count, per: elapsed, unit: "jobs/s"),
            ]
        }
    }
}
