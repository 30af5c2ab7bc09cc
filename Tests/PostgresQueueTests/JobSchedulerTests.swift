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
            try await withRunningServices(services, logger: db.logger) {
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
                LEFT JOIN q.all_jobs j ON j.metadata->>'pglocks.tick' IS NOT NULL AND j.id = t.job_id
                GROUP BY t.tick, t.term ORDER BY t.tick
                """)
            let ticks = try rows.map { try $0.decode((Date, Int64, Int).self) }
            #expect(ticks.allSatisfy { $0.2 == 1 }, "ticks without exactly one job: \(ticks.filter { $0.2 != 1 })")
            for (earlier, later) in zip(ticks, ticks.dropFirst()) {
                #expect(abs(later.0.timeIntervalSince(earlier.0) - 1) < 0.001, "a gap between ticks \(earlier.0) and \(later.0)")
            }
            #expect(Set(ticks.map(\.1)).count >= 2, "all ticks came from one term")
            #expect(try await db.scalar("SELECT count(*)::int FROM q.all_jobs WHERE kind = 'tick'", as: Int.self) == ticks.count)
            let jobsPerTick = try await db.scalar("SELECT max(n)::int FROM (SELECT count(*) AS n FROM q.all_jobs GROUP BY metadata->>'pglocks.tick') c", as: Int.self)
            #expect(jobsPerTick == 1)
        }
    }

    @Test func aDeposedLeadersTokenCannotEnqueueATick() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try await makeQueue(db)
            let schedule = try PeriodicJob(name: "nightly", schedule: .cron("0 2 * * *"), job: try NewJob(kind: "nightly"))
            let first = try makeElection(db, instance: "first")
            let stale = try await withRunningServices([first], logger: db.logger) {
                try await first.withLeadership { token in token }
            }
            _ = try await queue.recordSchedules([schedule], token: stale, on: db.client, logger: db.logger)
            let second = try makeElection(db, instance: "second")
            try await withRunningServices([second], logger: db.logger) {
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
                #expect(try await db.scalar("SELECT count(*)::int FROM q.all_jobs", as: Int.self) == 1)
            }
        }
    }

    @Test func missedTicksAreSkippedRunOnceOrBackfilledAndSchedulesShowLastAndNextRun() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try await makeQueue(db)
            // Ticks every ten seconds: the scheduler's first plan comes well before the next tick
            // even on a loaded machine, so what it enqueues at once is exactly the missed ticks.
            let every = try PeriodicSchedule.every(.seconds(10))
            let schedules = try [
                PeriodicJob(name: "skip", schedule: every, missedTicks: .skip, lateness: .milliseconds(250), job: try NewJob(kind: "s")),
                PeriodicJob(name: "once", schedule: every, missedTicks: .runOnce, job: try NewJob(kind: "o")),
                PeriodicJob(name: "backfill", schedule: every, missedTicks: .backfill(upTo: 3), job: try NewJob(kind: "b")),
            ]
            // Start between 0.5 s and 5 s after a tick: the last missed tick is later than the
            // skip schedule's lateness, and the next tick is seconds away.
            try await waitUntil("0.5 s to 5 s after a tick") { (0.5..<5).contains(Date().timeIntervalSince1970.truncatingRemainder(dividingBy: 10)) }
            // Every instance was down for the last hundred seconds.
            let started = Date()
            for name in ["skip", "once", "backfill"] {
                try await db.query("""
                    INSERT INTO q.schedules (name, schedule, queue, kind, missed_ticks, last_tick)
                    VALUES (\(name), 'every 10s', 'default', 'x', 'x', \(started.addingTimeInterval(-100)))
                    """)
            }
            let election = try makeElection(db, instance: "only")
            let scheduler = try JobScheduler(queue: queue, client: db.client, election: election, schedules: schedules, logger: db.logger)
            @Sendable func ticks(_ name: String) async throws -> [Date] {
                try await db.query("SELECT tick FROM q.ticks WHERE schedule = \(name) ORDER BY tick").map { try $0.decode(Date.self) }
            }
            try await withRunningServices([election, scheduler], logger: db.logger) {
                try await waitUntil("the missed ticks are planned") {
                    let once = try await ticks("once").count, backfill = try await ticks("backfill").count
                    let planned = try await db.scalar("SELECT count(*)::int FROM q.schedules WHERE next_tick IS NOT NULL", as: Int.self)
                    return once == 1 && backfill == 3 && planned == 3
                }
            }
            let lastMissed = try #require(every.previousTick(atOrBefore: started))
            #expect(try await ticks("skip").isEmpty)
            #expect(try await ticks("once") == [lastMissed])
            #expect(try await ticks("backfill") == [lastMissed.addingTimeInterval(-20), lastMissed.addingTimeInterval(-10), lastMissed])
            let listed = try await queue.schedules(on: db.client, logger: db.logger)
            #expect(listed.map(\.name) == ["backfill", "once", "skip"])
            for summary in listed {
                #expect(summary.schedule == "every 10s" && summary.queue == "default" && summary.term != nil)
                #expect(summary.nextTick == lastMissed.addingTimeInterval(10))
                #expect(summary.lastJobID != nil || summary.name == "skip")
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
