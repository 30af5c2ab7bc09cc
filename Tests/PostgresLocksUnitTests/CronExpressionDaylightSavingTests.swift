import Foundation
import PostgresQueue
import PostgresLocks
import Testing

/// New York: 2026-03-08 02:00 EST → 03:00 EDT, 2026-11-01 02:00 EDT → 01:00 EST.
/// Berlin: 2026-03-29 02:00 CET → 03:00 CEST, 2026-10-25 03:00 CEST → 02:00 CET.
/// Lord Howe Island (half-hour shift): 2026-04-05 02:00 → 01:30, 2026-10-04 02:00 → 02:30.
@Suite("Cron expressions: daylight saving time")
struct CronExpressionDaylightSavingTests {
    private let newYork = PeriodicTestSupport.zone("America/New_York")
    private let berlin = PeriodicTestSupport.zone("Europe/Berlin")
    private let lordHowe = PeriodicTestSupport.zone("Australia/Lord_Howe")

    private func fires(_ text: String, in zone: TimeZone, from start: String, through end: String) throws -> [Date] {
        PeriodicTestSupport.fires(
            of: try CronExpression(text), in: zone, from: PeriodicTestSupport.date(start), through: PeriodicTestSupport.date(end)
        )
    }

    private func dates(_ texts: String...) -> [Date] { texts.map(PeriodicTestSupport.date) }

    @Test func springForwardGapFiresOnceWhenTheClocksJump() throws {
        #expect(
            try fires("30 2 * * *", in: newYork, from: "2026-03-07T00:00:00-05:00", through: "2026-03-09T23:00:00-04:00")
                == dates("2026-03-07T02:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00")
        )
        #expect(
            try fires("30 2 * * *", in: berlin, from: "2026-03-28T00:00:00+01:00", through: "2026-03-30T23:00:00+02:00")
                == dates("2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00")
        )
        #expect(
            try fires("0 2 * * *", in: lordHowe, from: "2026-10-03T00:00:00+10:30", through: "2026-10-05T23:00:00+11:00")
                == dates("2026-10-03T02:00:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-05T02:00:00+11:00")
        )
    }

    @Test func repeatedTimeFiresOnlyAtItsFirstOccurrence() throws {
        #expect(
            try fires("30 1 * * *", in: newYork, from: "2026-10-31T00:00:00-04:00", through: "2026-11-02T23:00:00-05:00")
                == dates("2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00")
        )
        #expect(
            try fires("30 2 * * *", in: berlin, from: "2026-10-24T00:00:00+02:00", through: "2026-10-26T23:00:00+01:00")
                == dates("2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00")
        )
        #expect(
            try fires("30 1 * * *", in: lordHowe, from: "2026-04-04T00:00:00+11:00", through: "2026-04-06T23:00:00+10:30")
                == dates("2026-04-04T01:30:00+11:00", "2026-04-05T01:30:00+11:00", "2026-04-06T01:30:00+10:30")
        )
    }

    @Test func duringTheRepeatedHourTheFirstOccurrenceIsThePreviousFire() throws {
        let expression = try CronExpression("30 1 * * *")
        let secondPass = PeriodicTestSupport.date("2026-11-01T01:45:00-05:00")
        #expect(expression.previousFire(atOrBefore: secondPass, in: newYork) == PeriodicTestSupport.date("2026-11-01T01:30:00-04:00"))
        #expect(expression.nextFire(after: secondPass, in: newYork) == PeriodicTestSupport.date("2026-11-02T01:30:00-05:00"))
        let repeatedHalfHour = PeriodicTestSupport.date("2026-11-01T01:30:00-05:00")
        #expect(expression.nextFire(after: repeatedHalfHour.addingTimeInterval(-1), in: newYork) == PeriodicTestSupport.date("2026-11-02T01:30:00-05:00"))
        let everyMinute = try CronExpression("* * * * *")
        #expect(everyMinute.nextFire(after: repeatedHalfHour, in: newYork) == PeriodicTestSupport.date("2026-11-01T02:00:00-05:00"))
        #expect(everyMinute.previousFire(atOrBefore: repeatedHalfHour, in: newYork) == PeriodicTestSupport.date("2026-11-01T01:59:00-04:00"))
    }

    @Test func hourlyFiresOnceAnHourOfWallClockAcrossBothNights() throws {
        #expect(
            try fires("0 * * * *", in: newYork, from: "2026-03-08T00:00:00-05:00", through: "2026-03-08T04:00:00-04:00")
                == dates("2026-03-08T00:00:00-05:00", "2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00")
        )
        #expect(
            try fires("0 * * * *", in: newYork, from: "2026-11-01T00:00:00-04:00", through: "2026-11-01T03:00:00-05:00")
                == dates("2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00")
        )
        #expect(
            try fires("0 * * * *", in: lordHowe, from: "2026-04-05T00:00:00+11:00", through: "2026-04-05T03:00:00+10:30")
                == dates("2026-04-05T00:00:00+11:00", "2026-04-05T01:00:00+11:00", "2026-04-05T02:00:00+10:30", "2026-04-05T03:00:00+10:30")
        )
    }

    @Test func severalMatchesInsideOneGapFireTogetherOnce() throws {
        #expect(
            try fires("*/15 * * * *", in: newYork, from: "2026-03-08T01:30:00-05:00", through: "2026-03-08T03:30:00-04:00")
                == dates(
                    "2026-03-08T01:30:00-05:00", "2026-03-08T01:45:00-05:00", "2026-03-08T03:00:00-04:00",
                    "2026-03-08T03:15:00-04:00", "2026-03-08T03:30:00-04:00"
                )
        )
        #expect(
            try fires("*/15 * * * *", in: lordHowe, from: "2026-10-04T01:30:00+10:30", through: "2026-10-04T03:00:00+11:00")
                == dates(
                    "2026-10-04T01:30:00+10:30", "2026-10-04T01:45:00+10:30", "2026-10-04T02:30:00+11:00",
                    "2026-10-04T02:45:00+11:00", "2026-10-04T03:00:00+11:00"
                )
        )
    }

    @Test func quarterHoursSkipTheRepeatedStretch() throws {
        #expect(
            try fires("*/15 * * * *", in: newYork, from: "2026-11-01T01:30:00-04:00", through: "2026-11-01T02:15:00-05:00")
                == dates("2026-11-01T01:30:00-04:00", "2026-11-01T01:45:00-04:00", "2026-11-01T02:00:00-05:00", "2026-11-01T02:15:00-05:00")
        )
        #expect(
            try fires("*/15 * * * *", in: lordHowe, from: "2026-04-05T01:30:00+11:00", through: "2026-04-05T02:15:00+10:30")
                == dates("2026-04-05T01:30:00+11:00", "2026-04-05T01:45:00+11:00", "2026-04-05T02:00:00+10:30", "2026-04-05T02:15:00+10:30")
        )
    }

    @Test func everySecondsOfAMissingHourFireOnceAtTheJump() throws {
        let expression = try CronExpression("*/20 * 2 * * *")
        let jump = PeriodicTestSupport.date("2026-03-08T03:00:00-04:00")
        #expect(expression.nextFire(after: jump.addingTimeInterval(-1), in: newYork) == jump)
        #expect(expression.nextFire(after: jump, in: newYork) == PeriodicTestSupport.date("2026-03-09T02:00:00-04:00"))
        #expect(expression.previousFire(atOrBefore: jump, in: newYork) == jump)
        #expect(expression.previousFire(atOrBefore: jump.addingTimeInterval(-1), in: newYork) == PeriodicTestSupport.date("2026-03-07T02:59:40-05:00"))
    }

    @Test func everySecondsOfARepeatedHourFireOnlyTheFirstTime() throws {
        let berlinNight = try fires("*/20 * 2 * * *", in: berlin, from: "2026-10-25T00:00:00Z", through: "2026-10-26T02:00:00+01:00")
        #expect(berlinNight.count == 181)
        #expect(berlinNight.first == PeriodicTestSupport.date("2026-10-25T02:00:00+02:00"))
        #expect(berlinNight.dropLast().last == PeriodicTestSupport.date("2026-10-25T02:59:40+02:00"))
        #expect(berlinNight.last == PeriodicTestSupport.date("2026-10-26T02:00:00+01:00"))
        // New York's hour 2 happens once, after the repeated hour 1.
        let newYorkNight = try fires("*/20 * 2 * * *", in: newYork, from: "2026-11-01T00:00:00-04:00", through: "2026-11-01T03:00:00-05:00")
        #expect(newYorkNight.count == 180)
        #expect(newYorkNight.first == PeriodicTestSupport.date("2026-11-01T02:00:00-05:00"))
    }

    /// Each 2026 transition of a zone.
    private static let nights: [(zone: String, label: String)] = [
        ("America/New_York", "spring"), ("America/New_York", "autumn"),
        ("Europe/Berlin", "spring"), ("Europe/Berlin", "autumn"),
        ("Australia/Lord_Howe", "autumn"), ("Australia/Lord_Howe", "spring"),
    ]

    /// The instant of the first (index 0) or second (1) offset change of 2026, from Foundation.
    private static func transition(_ zone: TimeZone, _ index: Int) -> Date {
        var date = PeriodicTestSupport.date("2026-01-01T00:00:00Z")
        for _ in 0...index { date = zone.nextDaylightSavingTimeTransition(after: date)! }
        return date
    }

    @Test(arguments: ["30 2 * * *", "0 * * * *", "*/15 * * * *", "*/7 1-3 * * *", "45 1 * * *", "0,30 2,3 * * *", "15 1 * * *"])
    func minuteExpressionsAgreeWithABruteForceScanAroundEveryTransition(_ text: String) throws {
        let expression = try CronExpression(text)
        for (index, night) in Self.nights.enumerated() {
            let zone = PeriodicTestSupport.zone(night.zone)
            let change = Self.transition(zone, index % 2)
            let start = change.addingTimeInterval(-86_400)
            let end = change.addingTimeInterval(86_400)
            let expected = PeriodicTestSupport.bruteForceFires(of: expression, in: zone, from: start, through: end, step: 60)
            let actual = PeriodicTestSupport.fires(of: expression, in: zone, from: start, through: end)
            #expect(!expected.isEmpty)
            #expect(actual == expected, "\(text) in \(night.zone), \(night.label)")
            for (fire, earlier) in zip(actual.dropFirst(), actual) {
                #expect(expression.previousFire(atOrBefore: fire, in: zone) == fire)
                #expect(expression.previousFire(atOrBefore: fire.addingTimeInterval(-0.5), in: zone) == earlier)
            }
        }
    }

    @Test(arguments: ["*/20 * 2 * * *", "0 30 1 * * *", "*/13 * 1-3 * * *"])
    func secondExpressionsAgreeWithABruteForceScanAroundEveryTransition(_ text: String) throws {
        let expression = try CronExpression(text)
        for (index, night) in Self.nights.enumerated() {
            let zone = PeriodicTestSupport.zone(night.zone)
            let change = Self.transition(zone, index % 2)
            let start = change.addingTimeInterval(-5_400)
            let end = change.addingTimeInterval(5_400)
            let expected = PeriodicTestSupport.bruteForceFires(of: expression, in: zone, from: start, through: end, step: 1)
            let actual = PeriodicTestSupport.fires(of: expression, in: zone, from: start, through: end)
            #expect(!expected.isEmpty)
            #expect(actual == expected, "\(text) in \(night.zone), \(night.label)")
        }
    }
}
