import Foundation
import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO
import PostgresQueue
import ServiceLifecycle

/// Periodic jobs across a killed leader: three instances each run a `LeaderElection` and a
/// `JobScheduler` with a one-second schedule that backfills missed ticks; a worker runs the
/// jobs (its side effect and completion in one transaction). The leader's backend is killed
/// twice. Every tick from the first to the last must be enqueued exactly once (no gap, no
/// duplicate, across at least two terms) and run exactly once.
struct PeriodicJobsScenario: DemoScenario {
    var needsServerSession: Bool { true }
    var name: String { "periodic jobs" }
    /// Scheduler instances, leader backends killed, and ticks waited for in each term.
    var instances = 3, kills = 2, ticksPerTerm = 3

    struct Tick: JobDefinition {
        static let kind = "demo-tick"
    }

    func run(context: DemoContext) async throws -> [ScenarioOutcome] {
        let logger = context.logger, client = context.client
        let schema = "pglock_demo_periodic"
        return try await context.withScratchQueue(schema: schema) { queue in
            let effects = try QualifiedName(schema: schema, "effects")
            let termsTable = try QualifiedName(schema: schema, "terms")
            try await context.idempotentQuery("CREATE TABLE IF NOT EXISTS \(identifier: effects) (tick text NOT NULL, job bigint NOT NULL)")

            // Killed leaders and the worker's broken claims log warnings; they are expected here.
            let quietLogger = context.quietLogger
            let schedule = try PeriodicJob(name: "every-second", schedule: .every(.seconds(1)), missedTicks: .backfill(upTo: 100)) { _ in
                try NewJob(Tick())
            }
            let elections = try (1...instances).map { index in
                var configuration = LeaderElection.Configuration(name: "pglock-demo-scheduler", connection: context.settings, termsTable: termsTable, instanceID: "instance-\(index)")
                configuration.heartbeatInterval = .milliseconds(250)
                configuration.retryInterval = .seconds(1)
                configuration.responseTimeout = .seconds(2)
                configuration.reconnectDelay = .milliseconds(50)
                return try LeaderElection(configuration: configuration, logger: quietLogger)
            }
            let schedulers = try elections.map { try JobScheduler(queue: queue, client: client, election: $0, schedules: [schedule], logger: quietLogger) }
            var handlers = JobHandlers()
            handlers.register(Tick.self) { _, job in
                try await context.transaction { tx in
                    try await tx.query("INSERT INTO \(identifier: effects) VALUES (\(job.job.metadata["pglocks.tick"] ?? "?"), \(job.job.id))")
                    try await job.complete(in: tx)
                }
            }
            let worker = try QueueWorker(queue: queue, client: client, handlers: handlers, configuration: .init(
                queue: "default", concurrency: 4, lease: .seconds(5), pollInterval: .milliseconds(50), reapInterval: .milliseconds(200)
            ), logger: quietLogger)

            context.progress.step("\(name): \(instances) instances schedule a job every second; killing the leader's backend \(kills) times")
            func ticks() async throws -> Int {
                try await context.idempotentQuery("SELECT count(*)::int FROM \(identifier: queue.ticksTable)").rows[0].decode(Int.self)
            }
            var killed = 0
            let settled = try await withRunningServices([worker], logger: logger) {
                let reached = try await withRunningServices(elections + schedulers, logger: logger) {
                    var reached = try await waitFor(context, seconds: 30) { try await ticks() >= ticksPerTerm }
                    for _ in 0..<kills where reached {
                        if let pid = elections.first(where: \.isLeader)?.sessionBackendPID,
                           try await context.idempotentQuery("SELECT pg_terminate_backend(\(pid))").rows[0].decode(Bool.self) {
                            killed += 1
                        }
                        let before = try await ticks()
                        reached = try await waitFor(context, seconds: 30) { try await ticks() >= before + ticksPerTerm }
                    }
                    return reached
                }
                // Every enqueued tick runs before the worker stops.
                let drained = try await waitFor(context, seconds: 60) {
                    try await context.idempotentQuery("SELECT count(*)::int FROM \(identifier: queue.jobsTable) WHERE state <> 'completed'").rows[0].decode(Int.self) == 0
                }
                return reached && drained
            }

            let rows = try await context.idempotentQuery("SELECT tick, term FROM \(identifier: queue.ticksTable) ORDER BY tick").rows
            let ticks = try rows.map { try $0.decode((Date, Int64).self) }
            let gaps = zip(ticks, ticks.dropFirst()).filter { abs($1.0.timeIntervalSince($0.0) - 1) > 0.001 }.count
            let terms = Set(ticks.map(\.1)).count
            let (jobs, distinctTicks) = try await context.idempotentQuery(
                "SELECT count(*)::int, count(DISTINCT metadata->>'pglocks.tick')::int FROM \(identifier: queue.allJobsView)"
            ).rows[0].decode((Int, Int).self)
            let (runs, distinctRuns) = try await context.idempotentQuery(
                "SELECT count(*)::int, count(DISTINCT tick)::int FROM \(identifier: effects)"
            ).rows[0].decode((Int, Int).self)
            let detail = "\(ticks.count) ticks over \(terms) terms (\(killed) leaders killed), \(gaps) gaps; \(jobs) jobs for \(distinctTicks) ticks; \(runs) runs of \(distinctRuns) ticks"
            context.progress.done(detail)
            return [outcome(
                "each tick enqueued and run once across killed leaders",
                passed: settled && !ticks.isEmpty && gaps == 0 && terms >= 2 && jobs == ticks.count && distinctTicks == jobs
                    && runs == jobs && distinctRuns == runs,
                detail: detail
            )]
        }
    }
}

/// Polls `condition` every 50 ms for up to `seconds`; returns whether it held.
func waitFor(_ context: DemoContext, seconds limit: Double, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int64(limit * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}
