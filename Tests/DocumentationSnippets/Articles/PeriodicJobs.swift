// The Swift blocks of the DocC article PeriodicJobs.md.
import Foundation
import Logging
import PostgresLocks
import PostgresNIO
import PostgresQueue
import ServiceLifecycle

func articlePeriodicJobs(client: PostgresClient, settings: ConnectionSettings, queue: JobQueue, worker: QueueWorker, logger: Logger) async throws {
    struct CloseInvoices: JobDefinition {
        static let kind = "close-invoices"
        var day: Date
    }

    let election = try LeaderElection(configuration: .init(name: "billing-scheduler", connection: settings), logger: logger)
    let scheduler = try JobScheduler(queue: queue, client: client, election: election, schedules: [
        // 02:00 in Berlin every day; the job is made for each tick and is given the tick's instant.
        try PeriodicJob(name: "close-invoices", schedule: .cron("0 2 * * *", timeZone: TimeZone(identifier: "Europe/Berlin")!)) { tick in
            try NewJob(CloseInvoices(day: tick))
        },
        // Every five minutes, at :00, :05, :10, … (intervals count from the Unix epoch).
        try PeriodicJob(name: "refresh-rates", schedule: .every(.seconds(300)), missedTicks: .skip, job: NewJob(kind: "refresh-rates")),
        // On the hour; after an outage, one job for each hour missed (the latest 48 at most).
        try PeriodicJob(name: "hourly-usage", schedule: .cron("@hourly"), missedTicks: .backfill(upTo: 48), job: NewJob(kind: "hourly-usage")),
    ], logger: logger)

    // The election before the scheduler: a ServiceGroup stops its services in reverse order.
    try await ServiceGroup(services: [client, election, scheduler, worker], gracefulShutdownSignals: [.sigterm], logger: logger).run()
}

func articleCronSchedule() throws {
    let schedule = try PeriodicSchedule.cron("30 2 * * *", timeZone: TimeZone(identifier: "America/New_York")!)
    let midnight = Date(timeIntervalSince1970: 1_772_946_000)      // 2026-03-08 00:00 in New York
    let tick = schedule.nextTick(after: midnight)                  // 03:00 EDT: 02:30 does not exist that day
    _ = tick
}

func articleTickPlanner(lastTick: Date?) throws {
    let planner = TickPlanner(schedule: try .every(.seconds(3600)), policy: .backfill(upTo: 3))
    let plan = planner.plan(lastTick: lastTick, now: Date())
    // plan.due: the missed hours to enqueue now, oldest first (3 at most); plan.next: the next tick
    _ = plan
}
