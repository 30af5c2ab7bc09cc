import Foundation
import PostgresQueue
import PostgresLocks
import Testing

@Suite("Cron expressions: next and previous fire")
struct CronExpressionMatchingTests {
    private let utc = TimeZone.gmt

    private func date(_ text: String) -> Date { PeriodicTestSupport.date(text) }

    private func next(_ text: String, after: String, in zone: TimeZone = .gmt) throws -> Date? {
        try CronExpression(text).nextFire(after: date(after), in: zone)
    }

    private func previous(_ text: String, atOrBefore: String, in zone: TimeZone = .gmt) throws -> Date? {
        try CronExpression(text).previousFire(atOrBefore: date(atOrBefore), in: zone)
    }

    @Test func nextFireIsStrictlyAfterAndPreviousFireIsAtOrBefore() throws {
        #expect(try next("* * * * *", after: "2026-05-10T10:00:00Z") == date("2026-05-10T10:01:00Z"))
        #expect(try next("* * * * *", after: "2026-05-10T09:59:59Z") == date("2026-05-10T10:00:00Z"))
        let expression = try CronExpression("0 10 * * *")
        let fire = date("2026-05-10T10:00:00Z")
        #expect(expression.nextFire(after: fire.addingTimeInterval(-0.001), in: utc) == fire)
        #expect(expression.nextFire(after: fire, in: utc) == date("2026-05-11T10:00:00Z"))
        #expect(expression.previousFire(atOrBefore: fire, in: utc) == fire)
        #expect(expression.previousFire(atOrBefore: fire.addingTimeInterval(-0.001), in: utc) == date("2026-05-09T10:00:00Z"))
        #expect(expression.previousFire(atOrBefore: fire.addingTimeInterval(0.999), in: utc) == fire)
    }

    @Test func macrosFireWhenTheirExpansionsDo() throws {
        let after = "2026-05-13T10:20:30Z"  // a Wednesday
        #expect(try next("@hourly", after: after) == date("2026-05-13T11:00:00Z"))
        #expect(try next("@daily", after: after) == date("2026-05-14T00:00:00Z"))
        #expect(try next("@midnight", after: after) == date("2026-05-14T00:00:00Z"))
        #expect(try next("@weekly", after: after) == date("2026-05-17T00:00:00Z"))
        #expect(try next("@monthly", after: after) == date("2026-06-01T00:00:00Z"))
        #expect(try next("@yearly", after: after) == date("2027-01-01T00:00:00Z"))
        #expect(try next("@annually", after: after) == date("2027-01-01T00:00:00Z"))
        #expect(try previous("@weekly", atOrBefore: after) == date("2026-05-10T00:00:00Z"))
        #expect(try previous("@yearly", atOrBefore: after) == date("2026-01-01T00:00:00Z"))
    }

    @Test func eitherDayFieldMatchesWhenBothAreRestricted() throws {
        // 2026-01-01 is a Thursday: Fridays are the 2nd, 9th, 16th; the 13th is a Tuesday.
        let fires = PeriodicTestSupport.fires(
            of: try CronExpression("0 0 13 * FRI"), in: utc, from: date("2026-01-01T00:00:00Z"), through: date("2026-01-20T00:00:00Z")
        )
        #expect(fires == ["2026-01-02", "2026-01-09", "2026-01-13", "2026-01-16"].map { date("\($0)T00:00:00Z") })
    }

    @Test func bothDayFieldsMustMatchWhenOneIsAStar() throws {
        #expect(try next("0 0 * * FRI", after: "2026-01-10T00:00:00Z") == date("2026-01-16T00:00:00Z"))
        #expect(try next("0 0 13 * *", after: "2026-01-10T00:00:00Z") == date("2026-01-13T00:00:00Z"))
        #expect(try next("0 0 13 * ?", after: "2026-01-10T00:00:00Z") == date("2026-01-13T00:00:00Z"))
        #expect(try next("0 0 ? * FRI", after: "2026-01-10T00:00:00Z") == date("2026-01-16T00:00:00Z"))
        // A Friday the 13th needs both: `?` or `*` in one field does not make an OR.
        #expect(try next("0 0 13 FEB,MAR ?", after: "2026-01-10T00:00:00Z") == date("2026-02-13T00:00:00Z"))
    }

    @Test func february29FiresOnlyInLeapYearsSkippingCenturies() throws {
        #expect(try next("0 0 29 2 *", after: "2026-01-01T00:00:00Z") == date("2028-02-29T00:00:00Z"))
        #expect(try next("0 0 29 2 *", after: "2028-02-29T00:00:00Z") == date("2032-02-29T00:00:00Z"))
        #expect(try previous("0 0 29 2 *", atOrBefore: "2028-02-28T23:59:59Z") == date("2024-02-29T00:00:00Z"))
        // 2100 is not a leap year: eight years between February 29ths.
        #expect(try next("0 0 29 2 *", after: "2096-03-01T00:00:00Z") == date("2104-02-29T00:00:00Z"))
        #expect(try previous("0 0 29 2 *", atOrBefore: "2104-02-28T00:00:00Z") == date("2096-02-29T00:00:00Z"))
    }

    @Test func theYearRollsOver() throws {
        #expect(try next("0 0 1 1 *", after: "2026-12-31T23:59:59Z") == date("2027-01-01T00:00:00Z"))
        #expect(try previous("59 23 31 12 *", atOrBefore: "2027-01-01T00:00:00Z") == date("2026-12-31T23:59:00Z"))
        #expect(try next("*/20 * * * * *", after: "2026-12-31T23:59:40Z") == date("2027-01-01T00:00:00Z"))
        #expect(try previous("* * * * * *", atOrBefore: "2027-01-01T00:00:00Z") == date("2027-01-01T00:00:00Z"))
        #expect(try next("0 0 * * MON", after: "2026-12-30T00:00:00Z") == date("2027-01-04T00:00:00Z"))
    }

    @Test func stepsRangesAndListsPickTheRightValues() throws {
        let fires = PeriodicTestSupport.fires(
            of: try CronExpression("5-20/5,47 */6 * * *"), in: utc,
            from: date("2026-05-10T00:00:00Z"), through: date("2026-05-10T06:59:59Z")
        )
        let minutes = ["00:05", "00:10", "00:15", "00:20", "00:47", "06:05", "06:10", "06:15", "06:20", "06:47"]
        #expect(fires == minutes.map { date("2026-05-10T\($0):00Z") })
        #expect(try next("10/25 * * * *", after: "2026-05-10T00:36:00Z") == date("2026-05-10T01:10:00Z"))
        #expect(try next("*/20 * * * * *", after: "2026-05-10T10:00:05Z") == date("2026-05-10T10:00:20Z"))
        #expect(try next("*/20 * * * * *", after: "2026-05-10T10:00:40Z") == date("2026-05-10T10:01:00Z"))
        #expect(try previous("15,45 30 9 * * *", atOrBefore: "2026-05-10T09:30:44Z") == date("2026-05-10T09:30:15Z"))
    }

    @Test func fixedOffsetZonesShiftWallClockTimes() throws {
        let kolkata = PeriodicTestSupport.zone("Asia/Kolkata")
        #expect(try next("0 9 * * *", after: "2026-05-10T00:00:00Z", in: kolkata) == date("2026-05-10T03:30:00Z"))
        #expect(try next("0 9 * * *", after: "2026-05-10T03:30:00Z", in: kolkata) == date("2026-05-11T03:30:00Z"))
        // Sunday in Kolkata starts at 18:30 UTC on Saturday.
        #expect(try next("0 0 * * SUN", after: "2026-05-13T00:00:00Z", in: kolkata) == date("2026-05-16T18:30:00Z"))
    }

    @Test func sparseAndDenseExpressionsAlwaysHaveANextAndAPreviousFire() throws {
        let berlin = PeriodicTestSupport.zone("Europe/Berlin")
        let leapDay = try CronExpression("0 0 29 2 *")
        let everySecond = try CronExpression("* * * * * *")
        let sparse = try CronExpression("59 59 23 31 12 *")
        var generator = SeededGenerator(seed: 29)
        // (Speed is not a test's business: the search jumps field by field, see CronExpression+Matching.)
        for _ in 0..<300 {
            let instant = Date(timeIntervalSince1970: .random(in: 1.7e9...2.0e9, using: &generator))
            for expression in [leapDay, everySecond, sparse] {
                #expect(expression.nextFire(after: instant, in: berlin) != nil)
                #expect(expression.previousFire(atOrBefore: instant, in: berlin) != nil)
            }
        }
    }
}
