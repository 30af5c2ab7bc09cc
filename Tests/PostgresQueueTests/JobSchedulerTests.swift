import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import ServiceLifecycle
import Testing

@testable import PostgresQueue

private func makeElection(_ db: TestContext, instance: String) throws -> LeaderElection {
    var configuration = LeaderElection.Configuration(name: "scheduler", connection: db.settings, instanceID: instance)
    configuration.retryInterval = .seconds(1)
    configuration.heartbeatInterval = .milliseconds(200)
    configuration.responseTimeout = .seconds(30)
    configuration.reconnectDelay = .milliseconds(20)
    configuration.maximumReconnectDelay = .milliseconds(200)
    return try LeaderElection(configuration: configuration, logger: db.logger)
}

/// Runs `services` in one group while `body` runs, then shuts them down.
private func withServices<T: Sendable>(_ services: [any Service], logger: Logger, _ body: @Sendable () async throws -> T) async throws -> T {
    let group = ServiceGroup(services: services, gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
    return try await withThrowingTaskGroup(of: T?.self) { tasks in
        tasks.addTask { try await group.run(); return nil }
        let result: T
        do { result = try await body() } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        return result
    }
}

@Suite("PostgresQueue periodic jobs")
struct JobSchedulerTests {
    @Test func eachTickIsEnqueuedExactlyOnceByThreeInstancesAcrossAKilledLeader() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 30) { db in
            let queue = try await makeQueue(db)
            let every = try PeriodicJob(name: "heartbeat", schedule: .every(.milliseconds(1000)), missedTicks: .backfill(upTo: 100), job: try NewJob(kind: "tick"))
            let elections = try (0..<3).map { try makeElection(db, instance: "i\($0)") }
            let schedulers = try elections.map { try JobScheduler(queue: queue, client: db.client, election: $0, schedules: [every], logger: db.logger) }
            let services: [any Service] = elections + schedulers
            @Sendable func ticks() async throws -> Int { try await db.scalar("SELECT count(*)::int FROM q.ticks", as: Int.self) }
            try await withServices(services, logger: db.logger) {
                try await waitUntil("three ticks are enqueued") { try await ticks() >= 3 }
                // Kill the leader's session: another instance takes over, mid-schedule.
                let leaders = elections.filter(\.isLeader)
                let leader = try #require(leaders.first)
                let pid = try #require(leader.sessionBackendPID)
                #expect(try await db.scalar("SELECT pg_terminate_backend(\(pid))", as: Bool.self))
                let before = try await ticks()
                try await waitUntil("three more ticks after the leader was killed") { try await ticks() >= before + 3 }
            }
            // One job per tick, ticks one second apart with none missing, under at least two terms.
            let rows = try await db.query("""
                SELECT t.tick, t.term, count(j.id)::int FROM q.ticks t
                LEFT JOIN q.jobs j ON j.metadata->>'pglocks.tick' IS NOT NULL AND j.id = t.job_id
                GROUP BY t.tick, t.term ORDER BY t.tick
                """)
            let ticks = try rows.map { try $0.decode((Date, Int64, Int).self) }
            #expect(ticks.allSatisfy { $0.2 == 1 }, "ticks without exactly one job: \(ticks.filter { $0.2 != 1 })")
            for (earlier, later) in zip(ticks, ticks.dropFirst()) {
                #expect(abs(later.0.timeIntervalSince(earlier.0) - 1) < 0.001, "a gap between ticks \(earlier.0) and \(later.0)")
            }
            #expect(Set(ticks.map(\.1)).count >= 2, "all ticks came from one term")
            #expect(try await db.scalar("SELECT count(*)::int FROM q.jobs WHERE kind = 'tick'", as: Int.self) == ticks.count)
            let jobsPerTick = try await db.scalar("SELECT max(n)::int FROM (SELECT count(*) AS n FROM q.jobs GROUP BY metadata->>'pglocks.tick') c", as: Int.self)
            #expect(jobsPerTick == 1)
        }
    }

    @Test func aDeposedLeadersTokenCannotEnqueueATick() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try await makeQueue(db)
            let schedule = try PeriodicJob(name: "nightly", schedule: .cron("0 2 * * *"), job: try NewJob(kind: "nightly"))
            let first = try makeElection(db, instance: "first")
            let stale = try await withServices([first], logger: db.logger) {
                try await first.withLeadership { token in token }
            }
            _ = try await queue.recordSchedules([schedule], token: stale, on: db.client, logger: db.logger)
            let second = try makeElection(db, instance: "second")
            try await withServices([second], logger: db.logger) {
                let current = try await second.withLeadership { token in token }
                #expect(current.term > stale.term)
                let tick = Date(timeIntervalSince1970: 1_800_000_000)
                let refused = await #expect(throws: PostgresLocksError.self) {
                    try await queue.enqueueTick(tick, of: schedule, next: nil, token: stale, on: db.client, logger: db.logger)
                }
                #expect(refused?.code == .fenced)
                #expect(try await db.scalar("SELECT count(*)::int FROM q.ticks", as: Int.self) == 0)
                // The current leader enqueues it once; a second attempt finds it done.
                #expect(try await queue.enqueueTick(tick, of: schedule, next: nil, token: current, on: db.client, logger: db.logger) != nil)
                #expect(try await queue.enqueueTick(tick, of: schedule, next: nil, token: current, on: db.client, logger: db.logger) == nil)
                #expect(try await db.scalar("SELECT count(*)::int FROM q.jobs", as: Int.self) == 1)
            }
        }
    }

    @Test func missedTicksAreSkippedRunOnceOrBackfilledAndSchedulesShowLastAndNextRun() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try await makeQueue(db)
            let every = try PeriodicSchedule.every(.seconds(1))
            let schedules = try [
                PeriodicJob(name: "skip", schedule: every, missedTicks: .skip, lateness: .milliseconds(250), job: try NewJob(kind: "s")),
                PeriodicJob(name: "once", schedule: every, missedTicks: .runOnce, job: try NewJob(kind: "o")),
                PeriodicJob(name: "backfill", schedule: every, missedTicks: .backfill(upTo: 3), job: try NewJob(kind: "b")),
            ]
            // Start at least 400 ms after a tick, so that the last missed tick is later than the
            // skip schedule's lateness (ticks are whole seconds).
            try await waitUntil("400 ms into a second") { (0.4..<0.7).contains(Date().timeIntervalSince1970.truncatingRemainder(dividingBy: 1)) }
            // Every instance was down for the last ten seconds.
            let started = Date()
            for name in ["skip", "once", "backfill"] {
                try await db.query("""
                    INSERT INTO q.schedules (name, schedule, queue, kind, missed_ticks, last_tick)
                    VALUES (\(name), 'every 1s', 'default', 'x', 'x', \(started.addingTimeInterval(-10)))
                    """)
            }
            let election = try makeElection(db, instance: "only")
            let scheduler = try JobScheduler(queue: queue, client: db.client, election: election, schedules: schedules, logger: db.logger)
            try await withServices([election, scheduler], logger: db.logger) {
                try await waitUntil("each schedule enqueued a tick after the start") {
                    try await db.scalar("SELECT count(DISTINCT schedule)::int FROM q.ticks WHERE tick > \(started)", as: Int.self) == 3
                }
            }
            func missed(_ name: String) async throws -> Int {
                try await db.scalar("SELECT count(*)::int FROM q.ticks WHERE schedule = \(name) AND tick <= \(started)", as: Int.self)
            }
            #expect(try await missed("skip") == 0)
            #expect(try await missed("once") == 1)
            #expect(try await missed("backfill") == 3)
            let listed = try await queue.schedules(on: db.client, logger: db.logger)
            #expect(listed.map(\.name) == ["backfill", "once", "skip"])
            for summary in listed {
                #expect(summary.schedule == "every 1s" && summary.queue == "default")
                #expect(summary.lastTick != nil && summary.nextTick != nil && summary.term != nil && summary.lastJobID != nil)
                if let last = summary.lastTick, let next = summary.nextTick { #expect(next > last) }
            }
        }
    }

    @Test func badSchedulersAreRefusedWithTypedErrors() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let queue = try await makeQueue(db)
            let election = try makeElection(db, instance: "x")
            let job = try NewJob(kind: "k")
            let one = try PeriodicJob(name: "a", schedule: .every(.seconds(5)), job: job)
            #expect(throws: PostgresLocksError.self) { try JobScheduler(queue: queue, client: db.client, election: election, schedules: [], logger: db.logger) }
            #expect(throws: PostgresLocksError.self) { try JobScheduler(queue: queue, client: db.client, election: election, schedules: [one, one], logger: db.logger) }
            #expect(throws: PostgresLocksError.self) { try PeriodicJob(name: "", schedule: .every(.seconds(5)), job: job) }
            #expect(throws: PostgresLocksError.self) { try PeriodicJob(name: "b", schedule: .every(.seconds(5)), missedTicks: .backfill(upTo: 0), job: job) }
            #expect(throws: PostgresLocksError.self) { try PeriodicSchedule.cron("61 * * * *") }
            #expect(throws: PostgresLocksError.self) { try PeriodicSchedule.every(.milliseconds(10)) }
        }
    }
}
