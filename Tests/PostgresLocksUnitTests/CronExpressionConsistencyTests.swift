import Foundation
import PostgresQueue
import PostgresLocks
import Testing

@Suite("Cron expressions: next and previous agree at random instants")
struct CronExpressionConsistencyTests {
    /// Expressions and zones, a seed each; six-field expressions are scanned second by second.
    static let cases: [(text: String, zone: String, seed: UInt64)] = [
        ("*/15 * * * *", "America/New_York", 1),
        ("30 2 * * *", "Europe/Berlin", 2),
        ("0 0 29 2 *", "UTC", 3),
        ("0 9 * * MON-FRI", "Australia/Lord_Howe", 4),
        ("0 0 13 * FRI", "America/New_York", 5),
        ("59 23 31 12 *", "Asia/Kolkata", 6),
        ("0 */3 * * SUN", "Australia/Sydney", 7),
        ("*/20 * 2 * * *", "Europe/Berlin", 8),
        ("0 30 1 * * *", "Australia/Lord_Howe", 9),
        ("*/7 * * * * *", "America/New_York", 10),
    ]

    @Test(arguments: cases.indices)
    func previousOfNextIsNextAndNothingFiresBetweenPreviousAndNext(_ index: Int) throws {
        let (text, zoneName, seed) = Self.cases[index]
        let expression = try CronExpression(text)
        let zone = PeriodicTestSupport.zone(zoneName)
        let step = text.split(separator: " ").count == 6 ? 1 : 60
        var generator = SeededGenerator(seed: seed)
        let start = PeriodicTestSupport.date("2024-01-01T00:00:00Z").timeIntervalSince1970
        let end = PeriodicTestSupport.date("2032-01-01T00:00:00Z").timeIntervalSince1970
        // A third of the instants fall within three hours of a change of the zone's offset.
        var changes: [Date] = []
        var cursor = Date(timeIntervalSince1970: start)
        while let change = zone.nextDaylightSavingTimeTransition(after: cursor), change.timeIntervalSince1970 < end {
            changes.append(change)
            cursor = change
        }
        var bruteForceChecks = 0
        for round in 0..<150 {
            let instant: Date
            if round % 3 == 0, let change = changes.randomElement(using: &generator) {
                instant = change.addingTimeInterval(.random(in: -10_800...10_800, using: &generator).rounded())
            } else {
                instant = Date(timeIntervalSince1970: .random(in: start..<end, using: &generator))
            }
            let next = try #require(expression.nextFire(after: instant, in: zone))
            let previous = try #require(expression.previousFire(atOrBefore: instant, in: zone))
            #expect(previous <= instant && instant < next)
            #expect(expression.previousFire(atOrBefore: next, in: zone) == next, "\(text) at \(instant)")
            #expect(expression.nextFire(after: previous, in: zone) == next, "\(text) at \(instant)")
            // A short gap is scanned by brute force: exactly its two ends fire.
            let span = next.timeIntervalSince(previous)
            if span <= (step == 60 ? 86_400 : 7_200) && bruteForceChecks < 25 {
                bruteForceChecks += 1
                let scanned = PeriodicTestSupport.bruteForceFires(
                    of: expression, in: zone, from: previous.addingTimeInterval(-Double(step)), through: next, step: step
                )
                #expect(scanned.drop(while: { $0 < previous }) == [previous, next], "\(text) at \(instant)")
            }
        }
    }
}
