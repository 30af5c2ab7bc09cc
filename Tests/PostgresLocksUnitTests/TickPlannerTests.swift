import Foundation
import PostgresQueue
import PostgresLocks
import Testing

@Suite("Periodic schedules: which ticks to enqueue")
struct TickPlannerTests {
    private func date(_ text: String) -> Date { PeriodicTestSupport.date(text) }

    private func planner(_ policy: MissedTickPolicy, _ text: String = "0 * * * *", zone: TimeZone = .gmt) throws -> TickPlanner {
        TickPlanner(schedule: try .cron(text, timeZone: zone), policy: policy)
    }

    @Test func backfillCountsOutside1To1000AreRejected() throws {
        for count in [0, -1, 1_001] {
            let error = #expect(throws: PostgresLocksError.self) { try MissedTickPolicy.backfill(upTo: count).validate() }
            #expect(error?.code == .invalidArgument)
        }
        let error = #expect(throws: PostgresLocksError.self) { try MissedTickPolicy.backfill(upTo: 0).validate() }
        #expect(error?.message == "missed tick policy backfill(upTo: 0) must catch up on between 1 and 1000 ticks")
        for policy: MissedTickPolicy in [.skip, .runOnce, .backfill(upTo: 1), .backfill(upTo: 1_000)] {
            #expect(throws: Never.self) { try policy.validate() }
        }
    }

    @Test func aScheduleSeenForTheFirstTimeFiresOnlyARecentTick() throws {
        for policy: MissedTickPolicy in [.skip, .runOnce, .backfill(upTo: 10)] {
            let planner = try planner(policy)
            let justAfter = date("2026-05-10T10:00:00Z").addingTimeInterval(0.005)
            #expect(planner.plan(lastTick: nil, now: justAfter) == TickPlan(due: [date("2026-05-10T10:00:00Z")], next: date("2026-05-10T11:00:00Z")))
            #expect(planner.plan(lastTick: nil, now: date("2026-05-10T10:30:00Z")) == TickPlan(due: [], next: date("2026-05-10T11:00:00Z")))
        }
    }

    @Test func aTickExactlyLatenessOldIsStillOnTime() throws {
        let planner = try planner(.skip)
        let tick = date("2026-05-10T10:00:00Z")
        #expect(planner.plan(lastTick: nil, now: tick.addingTimeInterval(60)).due == [tick])
        #expect(planner.plan(lastTick: nil, now: tick.addingTimeInterval(60.001)).due == [])
        #expect(planner.plan(lastTick: tick.addingTimeInterval(-3_600), now: tick.addingTimeInterval(60)).due == [tick])
        #expect(planner.plan(lastTick: tick.addingTimeInterval(-3_600), now: tick.addingTimeInterval(60.001)).due == [])
        let patient = TickPlanner(schedule: try .cron("0 * * * *"), policy: .skip, lateness: .seconds(600))
        #expect(patient.plan(lastTick: nil, now: tick.addingTimeInterval(600)).due == [tick])
        #expect(patient.plan(lastTick: nil, now: tick.addingTimeInterval(601)).due == [])
    }

    @Test func skipDropsMissedTicksAndKeepsOnlyARecentOne() throws {
        let planner = try planner(.skip)
        let lastTick = date("2026-05-10T07:00:00Z")
        #expect(planner.plan(lastTick: lastTick, now: date("2026-05-10T10:00:30Z")) == TickPlan(due: [date("2026-05-10T10:00:00Z")], next: date("2026-05-10T11:00:00Z")))
        #expect(planner.plan(lastTick: lastTick, now: date("2026-05-10T10:05:00Z")) == TickPlan(due: [], next: date("2026-05-10T11:00:00Z")))
    }

    @Test func runOnceEnqueuesTheLatestTickHoweverLate() throws {
        let planner = try planner(.runOnce)
        let lastTick = date("2026-05-10T07:00:00Z")
        #expect(planner.plan(lastTick: lastTick, now: date("2026-05-10T10:59:59Z")).due == [date("2026-05-10T10:00:00Z")])
        #expect(planner.plan(lastTick: date("2025-01-01T00:00:00Z"), now: date("2026-05-10T10:05:00Z")).due == [date("2026-05-10T10:00:00Z")])
    }

    @Test func backfillEnqueuesTheLatestTicksOldestFirst() throws {
        let lastTick = date("2026-05-10T07:00:00Z")
        let now = date("2026-05-10T10:05:00Z")
        let all = ["08", "09", "10"].map { date("2026-05-10T\($0):00:00Z") }
        #expect(try planner(.backfill(upTo: 5)).plan(lastTick: lastTick, now: now) == TickPlan(due: all, next: date("2026-05-10T11:00:00Z")))
        #expect(try planner(.backfill(upTo: 3)).plan(lastTick: lastTick, now: now).due == all)
        #expect(try planner(.backfill(upTo: 2)).plan(lastTick: lastTick, now: now).due == Array(all.suffix(2)))
        #expect(try planner(.backfill(upTo: 1)).plan(lastTick: lastTick, now: now).due == [all[2]])
        // An invalid count is clamped rather than trusted.
        #expect(try planner(.backfill(upTo: 0)).plan(lastTick: lastTick, now: now).due == [all[2]])
    }

    @Test func nothingIsDueWhenTheLatestTickWasAlreadyEnqueued() throws {
        for policy: MissedTickPolicy in [.skip, .runOnce, .backfill(upTo: 10)] {
            let planner = try planner(policy)
            let tick = date("2026-05-10T10:00:00Z")
            #expect(planner.plan(lastTick: tick, now: tick) == TickPlan(due: [], next: date("2026-05-10T11:00:00Z")))
            #expect(planner.plan(lastTick: tick, now: date("2026-05-10T10:59:59Z")).due == [])
            // A last tick in the future (another instance's clock ran ahead): nothing before it.
            #expect(planner.plan(lastTick: date("2026-05-10T12:00:00Z"), now: date("2026-05-10T11:30:00Z")).due == [])
        }
    }

    @Test func backfillFromYearsAgoWalksBackOnlyAsFarAsItKeeps() throws {
        let planner = TickPlanner(schedule: try .every(.seconds(1)), policy: .backfill(upTo: 1_000))
        let now = date("2026-05-10T10:00:00Z").addingTimeInterval(0.25)
        let plan = planner.plan(lastTick: date("2016-01-01T00:00:00Z"), now: now)
        #expect(plan.due.count == 1_000)
        #expect(plan.due.first == date("2026-05-10T09:43:21Z"))
        #expect(plan.due.last == date("2026-05-10T10:00:00Z"))
        #expect(zip(plan.due, plan.due.dropFirst()).allSatisfy { $1.timeIntervalSince($0) == 1 })
        #expect(plan.next == date("2026-05-10T10:00:01Z"))
    }

    @Test func backfillThroughASpringForwardNightFiresTheGapOnce() throws {
        let newYork = PeriodicTestSupport.zone("America/New_York")
        let daily = try planner(.backfill(upTo: 10), "30 2 * * *", zone: newYork)
        #expect(
            daily.plan(lastTick: date("2026-03-07T02:30:00-05:00"), now: date("2026-03-09T03:00:00-04:00"))
                == TickPlan(
                    due: [date("2026-03-08T03:00:00-04:00"), date("2026-03-09T02:30:00-04:00")],
                    next: date("2026-03-10T02:30:00-04:00")
                )
        )
        let quarterly = try planner(.backfill(upTo: 10), "*/15 * * * *", zone: newYork)
        #expect(
            quarterly.plan(lastTick: date("2026-03-08T01:45:00-05:00"), now: date("2026-03-08T03:20:00-04:00")).due
                == [date("2026-03-08T03:00:00-04:00"), date("2026-03-08T03:15:00-04:00")]
        )
    }

    @Test func backfillThroughAFallBackNightSkipsTheRepeatedHour() throws {
        let newYork = PeriodicTestSupport.zone("America/New_York")
        let hourly = try planner(.backfill(upTo: 10), zone: newYork)
        #expect(
            hourly.plan(lastTick: date("2026-11-01T00:00:00-04:00"), now: date("2026-11-01T03:00:00-05:00")).due
                == [date("2026-11-01T01:00:00-04:00"), date("2026-11-01T02:00:00-05:00"), date("2026-11-01T03:00:00-05:00")]
        )
        // During the repeated hour the 01:00 tick was already enqueued: nothing is due.
        #expect(hourly.plan(lastTick: date("2026-11-01T01:00:00-04:00"), now: date("2026-11-01T01:30:00-05:00")).due == [])
        #expect(
            hourly.plan(lastTick: date("2026-11-01T01:00:00-04:00"), now: date("2026-11-01T01:30:00-05:00")).next
                == date("2026-11-01T02:00:00-05:00")
        )
    }
}
