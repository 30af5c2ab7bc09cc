import Foundation
import PostgresQueue
import PostgresLocks
import Testing

@Suite("Cron expressions: parsing and rejection")
struct CronExpressionParsingTests {
    private func message(_ text: String) -> String? {
        let error = #expect(throws: PostgresLocksError.self) { try CronExpression(text) }
        #expect(error?.code == .invalidArgument)
        return error?.message
    }

    @Test func outOfRangeValuesNameTheFieldTheValueAndTheExpression() {
        #expect(message("61 * * * *") == #"minute field "61" is out of range 0–59 in "61 * * * *""#)
        #expect(message("0 24 * * *") == #"hour field "24" is out of range 0–23 in "0 24 * * *""#)
        #expect(message("0 0 0 * *") == #"day-of-month field "0" is out of range 1–31 in "0 0 0 * *""#)
        #expect(message("0 0 * 13 *") == #"month field "13" is out of range 1–12 in "0 0 * 13 *""#)
        #expect(message("0 0 * * 8") == #"day-of-week field "8" is out of range 0–7 in "0 0 * * 8""#)
        #expect(message("60 * * * * *") == #"second field "60" is out of range 0–59 in "60 * * * * *""#)
        #expect(message("0 1-99999999999999999999 * * *")?.contains("out of range 0–23") == true)
    }

    @Test func aWrongNumberOfFieldsIsRejected() {
        #expect(message("* * * *")?.hasPrefix(#"cron expression "* * * *" has 4 fields; expected 5"#) == true)
        #expect(message("* * * * * * *")?.contains("has 7 fields") == true)
        #expect(message("   ") == "cron expression is empty")
        #expect(message("@daily 5") == #"cron macro "@daily" must stand alone in "@daily 5""#)
    }

    @Test func zeroStepsReversedRangesAndEmptyItemsAreRejected() {
        #expect(message("*/0 * * * *") == #"minute field step "0" must be at least 1 in "*/0 * * * *""#)
        #expect(message("*/61 * * * *") == #"minute field step "61" is out of range 1–60 in "*/61 * * * *""#)
        #expect(message("0 5-2 * * *") == #"hour field range "5-2" is reversed (5 comes after 2) in "0 5-2 * * *""#)
        #expect(message("0 0 * * SAT-SUN")?.contains("is reversed") == true)
        #expect(message("1,,2 * * * *") == #"minute field "1,,2" has an empty list item in "1,,2 * * * *""#)
        #expect(message("1, * * * *")?.contains("empty list item") == true)
        #expect(message("-5 * * * *") == #"minute field range "-5" is not of the form a-b in "-5 * * * *""#)
        #expect(message("1/2/3 * * * *")?.contains("more than one step") == true)
        #expect(message("*/x * * * *")?.contains(#"step "x" is not a number"#) == true)
    }

    @Test func unknownNamesAndMacrosAreRejected() {
        #expect(message("0 0 * FOO *") == #"month field "FOO" is not a number or a name JAN–DEC in "0 0 * FOO *""#)
        #expect(message("0 0 * * MONDAY") == #"day-of-week field "MONDAY" is not a number or a name SUN–SAT in "0 0 * * MONDAY""#)
        #expect(message("0 JAN * * *") == #"hour field "JAN" is not a number in "0 JAN * * *""#)
        #expect(message("@often")?.hasPrefix(#"unknown cron macro "@often"; expected one of @yearly, @annually"#) == true)
        #expect(message("0 ? * * *")?.contains("allowed only in the day-of-month and day-of-week fields") == true)
        #expect(message("0 0 ?,1 * *")?.contains("must stand alone") == true)
    }

    @Test func expressionsThatCanNeverFireAreRejected() {
        #expect(
            message("0 0 30 2 *")
                == #"cron expression "0 0 30 2 *" can never fire: day-of-month field "30" names no day that exists in month field "2""#
        )
        #expect(message("0 0 31 4,6,9,11 *")?.contains("can never fire") == true)
        #expect(message("0 0 31 APR-JUN/2 ?")?.contains("can never fire") == true)
        #expect(message("0 0 0 30-31 FEB *")?.contains("can never fire") == true)
    }

    @Test func rareButPossibleDaysAreAccepted() throws {
        _ = try CronExpression("0 0 29 2 *")
        _ = try CronExpression("0 0 31 4,5 *")
        // Both day fields restricted: any Monday in February matches, so it fires.
        _ = try CronExpression("0 0 30 2 MON")
    }

    @Test func allTheSyntaxIsAccepted() throws {
        for text in [
            "* * * * *", "*/5 * * * *", "0-30/10 * * * *", "5/15 * * * *", "1,2,3-5,*/20 * * * *",
            "0 9 ? * MON-FRI", "0 9 1 * ?", "0 0 * jan,Feb,MAR *", "0 0 * * sun,Sat", "0 0 * * 0-7",
            "*/20 * * * * *", "0 0 0 1 1 *", "@yearly", "@annually", "@monthly", "@weekly", "@daily",
            "@midnight", "@hourly", "@DAILY",
        ] {
            #expect(throws: Never.self, "\(text)") { try CronExpression(text) }
        }
    }

    @Test func descriptionIsTheTextTrimmedSingleSpacedWithNamesUpperCased() throws {
        #expect(try CronExpression("  0   9\t* jan mon-fri ").description == "0 9 * JAN MON-FRI")
        #expect(try CronExpression("@Daily").description == "@daily")
        #expect(try CronExpression("*/20 * * * * *").description == "*/20 * * * * *")
    }

    @Test func equalTextMeansEqualExpressions() throws {
        #expect(try CronExpression("0 9 * * mon") == CronExpression(" 0 9 * * MON"))
        #expect(try CronExpression("0 9 * * 1") != CronExpression("0 9 * * MON"))
        #expect(try Set([CronExpression("@hourly"), CronExpression("@HOURLY")]).count == 1)
    }

    @Test func encodesAsItsTextAndDecodingValidates() throws {
        let expression = try CronExpression("0 9 * * mon-fri")
        let data = try JSONEncoder().encode([expression])
        #expect(String(decoding: data, as: UTF8.self) == #"["0 9 * * MON-FRI"]"#)
        #expect(try JSONDecoder().decode([CronExpression].self, from: data) == [expression])
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([CronExpression].self, from: Data(#"["0 0 30 2 *"]"#.utf8))
        }
    }

    @Test func namesAndNumbersMeanTheSameDays() throws {
        let zone = TimeZone.gmt
        let start = PeriodicTestSupport.date("2026-01-01T00:00:00Z")
        let end = PeriodicTestSupport.date("2026-06-30T00:00:00Z")
        let named = PeriodicTestSupport.fires(of: try CronExpression("0 12 * jan-mar,JUN mon,Wed"), in: zone, from: start, through: end)
        let numbered = PeriodicTestSupport.fires(of: try CronExpression("0 12 * 1-3,6 1,3"), in: zone, from: start, through: end)
        #expect(named == numbered)
        #expect(named.count == 34)
    }

    @Test func sundayIsBothZeroAndSeven() throws {
        let zone = TimeZone.gmt
        let start = PeriodicTestSupport.date("2026-01-01T00:00:00Z")
        let end = PeriodicTestSupport.date("2026-03-01T00:00:00Z")
        let zero = PeriodicTestSupport.fires(of: try CronExpression("0 0 * * 0"), in: zone, from: start, through: end)
        #expect(zero == PeriodicTestSupport.fires(of: try CronExpression("0 0 * * 7"), in: zone, from: start, through: end))
        #expect(zero == PeriodicTestSupport.fires(of: try CronExpression("0 0 * * SUN"), in: zone, from: start, through: end))
        #expect(zero.first == PeriodicTestSupport.date("2026-01-04T00:00:00Z"))
        #expect(zero.count == 9)
    }
}
