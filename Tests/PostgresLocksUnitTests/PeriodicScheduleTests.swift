import Foundation
import PostgresQueue
import PostgresLocks
import Testing

@Suite("Periodic schedules: cron and intervals")
struct PeriodicScheduleTests {
    private func date(_ text: String) -> Date { PeriodicTestSupport.date(text) }

    @Test func intervalsAreAnchoredAtTheUnixEpochSoEveryInstanceAgrees() throws {
        let schedule = try PeriodicSchedule.every(.seconds(30))
        #expect(schedule == .every(.seconds(30), anchor: Date(timeIntervalSince1970: 0)))
        #expect(schedule.nextTick(after: date("2026-05-10T10:00:05Z")) == date("2026-05-10T10:00:30Z"))
        #expect(schedule.nextTick(after: date("2026-05-10T10:00:30Z")) == date("2026-05-10T10:01:00Z"))
        #expect(schedule.previousTick(atOrBefore: date("2026-05-10T10:00:30Z")) == date("2026-05-10T10:00:30Z"))
        #expect(schedule.previousTick(atOrBefore: date("2026-05-10T10:00:29Z")) == date("2026-05-10T10:00:00Z"))
        #expect(schedule.nextTick(after: Date(timeIntervalSince1970: -1)) == Date(timeIntervalSince1970: 0))
    }

    @Test func intervalTicksAreExactMultiplesAndNeverDrift() throws {
        let seven = try PeriodicSchedule.every(.seconds(7))
        var generator = SeededGenerator(seed: 7)
        for _ in 0..<200 {
            let instant = Date(timeIntervalSince1970: .random(in: 0...4e9, using: &generator))
            let next = try #require(seven.nextTick(after: instant))
            let previous = try #require(seven.previousTick(atOrBefore: instant))
            #expect(next.timeIntervalSince1970.truncatingRemainder(dividingBy: 7) == 0)
            #expect(next.timeIntervalSince(previous) == 7)
            #expect(previous <= instant && instant < next)
        }
        // 1.5 s ticks keep their half seconds exactly, billions of ticks from the anchor.
        let oneAndAHalf = try PeriodicSchedule.every(.milliseconds(1_500))
        #expect(oneAndAHalf.nextTick(after: date("2026-05-10T10:00:00Z")) == date("2026-05-10T10:00:00Z").addingTimeInterval(1.5))
        var tick = try #require(oneAndAHalf.nextTick(after: date("2026-05-10T10:00:00Z")))
        for _ in 0..<1_000 { tick = try #require(oneAndAHalf.nextTick(after: tick)) }
        #expect(tick == date("2026-05-10T10:25:01Z").addingTimeInterval(0.5))
        #expect(oneAndAHalf.previousTick(atOrBefore: tick) == tick)
    }

    @Test func intervalTicksIgnoreDaylightSavingTime() throws {
        let hourly = try PeriodicSchedule.every(.seconds(3_600))
        var tick = date("2026-11-01T00:00:00-04:00")
        for _ in 0..<4 {
            let next = try #require(hourly.nextTick(after: tick))
            #expect(next.timeIntervalSince(tick) == 3_600)
            tick = next
        }
        #expect(tick == date("2026-11-01T03:00:00-05:00"))
    }

    @Test func intervalsShorterThanASecondOrWithFinerThanMillisecondsAreRejected() throws {
        for interval: Duration in [.zero, .milliseconds(999), .seconds(-5), .nanoseconds(1_000_000_500), .seconds(1e10)] {
            let error = #expect(throws: PostgresLocksError.self, "\(interval)") { try PeriodicSchedule.every(interval) }
            #expect(error?.code == .invalidArgument)
        }
        let error = #expect(throws: PostgresLocksError.self) { try PeriodicSchedule.every(.milliseconds(500)) }
        #expect(error?.message == "interval 0.5 seconds is shorter than 1 second")
        _ = try PeriodicSchedule.every(.seconds(1))
        _ = try PeriodicSchedule.every(.milliseconds(1_001))
        _ = try PeriodicSchedule.every(PeriodicSchedule.maximumInterval)
    }

    @Test func cronSchedulesReadWallClockTimeInTheirZoneAndDefaultToGMT() throws {
        let gmt = try PeriodicSchedule.cron("0 9 * * *")
        #expect(gmt == .cron(try CronExpression("0 9 * * *"), timeZone: .gmt))
        #expect(gmt.nextTick(after: date("2026-05-10T10:00:00Z")) == date("2026-05-11T09:00:00Z"))
        let berlin = try PeriodicSchedule.cron("0 9 * * *", timeZone: PeriodicTestSupport.zone("Europe/Berlin"))
        #expect(berlin.nextTick(after: date("2026-05-10T10:00:00Z")) == date("2026-05-11T09:00:00+02:00"))
        #expect(berlin.previousTick(atOrBefore: date("2026-05-10T10:00:00Z")) == date("2026-05-10T09:00:00+02:00"))
        #expect(throws: PostgresLocksError.self) { try PeriodicSchedule.cron("0 0 30 2 *") }
    }

    @Test func descriptionsAreReadable() throws {
        #expect(try PeriodicSchedule.cron("0 * * * *", timeZone: PeriodicTestSupport.zone("Europe/Berlin")).description == #"cron "0 * * * *" Europe/Berlin"#)
        #expect(try PeriodicSchedule.cron("@daily").description == #"cron "@daily" GMT"#)
        #expect(try PeriodicSchedule.every(.seconds(30)).description == "every 30s")
        #expect(try PeriodicSchedule.every(.seconds(90)).description == "every 1m30s")
        #expect(try PeriodicSchedule.every(.seconds(3_600)).description == "every 1h")
        #expect(try PeriodicSchedule.every(.seconds(93_600)).description == "every 1d2h")
        #expect(try PeriodicSchedule.every(.milliseconds(1_500)).description == "every 1s500ms")
        let anchored = PeriodicSchedule.every(.seconds(60), anchor: date("2026-01-01T00:00:15Z"))
        #expect(anchored.description == "every 1m from 2026-01-01T00:00:15Z")
    }

    @Test func aCustomAnchorShiftsTheTicks() {
        let schedule = PeriodicSchedule.every(.seconds(60), anchor: date("2026-01-01T00:00:15Z"))
        #expect(schedule.nextTick(after: date("2026-05-10T10:00:00Z")) == date("2026-05-10T10:00:15Z"))
        #expect(schedule.previousTick(atOrBefore: date("2026-05-10T10:00:00Z")) == date("2026-05-10T09:59:15Z"))
        #expect(PeriodicSchedule.every(.zero, anchor: .now).nextTick(after: .now) == nil)
    }
}
