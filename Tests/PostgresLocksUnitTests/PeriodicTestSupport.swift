import Foundation
import PostgresQueue
import PostgresLocks
import Testing

/// Dates, zones, a seeded generator and a brute-force oracle for the periodic-schedule tests.
enum PeriodicTestSupport {
    /// An instant written in ISO 8601 with its UTC offset, e.g. `2026-03-08T03:00:00-04:00`.
    static func date(_ text: String) -> Date {
        guard let date = try? Date(text, strategy: .iso8601) else { fatalError("not an ISO 8601 instant: \(text)") }
        return date
    }

    /// A time zone by identifier.
    static func zone(_ identifier: String) -> TimeZone {
        guard let zone = TimeZone(identifier: identifier) else { fatalError("unknown time zone \(identifier)") }
        return zone
    }

    /// The fires of `expression` from `start` through `end` found with `nextFire`.
    static func fires(of expression: CronExpression, in zone: TimeZone, from start: Date, through end: Date) -> [Date] {
        var fires: [Date] = []
        var cursor = start.addingTimeInterval(-0.5)
        while let fire = expression.nextFire(after: cursor, in: zone), fire <= end {
            guard fire > cursor, fires.count < 100_000 else {
                Issue.record("nextFire(after: \(cursor)) returned \(fire): not later, or too many fires")
                break
            }
            fires.append(fire)
            cursor = fire
        }
        return fires
    }

    /// The fires of `expression` from `start` through `end` found by brute force, with Foundation's
    /// own calendar: scanning instants `step` seconds apart (60 for five fields, 1 for six), an
    /// instant fires when a matching wall-clock time is among those the clock shows at it or
    /// jumped over to reach it, and has not shown before. That is the documented rule: a
    /// repeated time fires at its first occurrence, a skipped one when the clocks jump.
    /// `start` must be a multiple of `step` and the zone's offsets multiples of `step`.
    static func bruteForceFires(
        of expression: CronExpression, in zone: TimeZone, from start: Date, through end: Date, step: Int
    ) -> [Date] {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 0)!
        func matches(wallTime: Int) -> Bool {
            let parts = calendar.dateComponents(
                [.year, .month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: TimeInterval(wallTime))
            )
            return expression.matches(
                year: parts.year!, month: parts.month!, day: parts.day!, hour: parts.hour!, minute: parts.minute!, second: parts.second!
            )
        }
        func wallTime(at instant: Int) -> Int {
            instant + zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(instant)))
        }
        let first = Int(start.timeIntervalSince1970)
        let last = Int(end.timeIntervalSince1970)
        // Three hours of warm-up learn the latest wall-clock time shown before `start`.
        var instant = first - 3 * 3_600
        var latestShown = wallTime(at: instant)
        var fires: [Date] = []
        while instant < last {
            instant += step
            let shown = wallTime(at: instant)
            if shown > latestShown {
                let firesHere = stride(from: latestShown + step, through: shown, by: step).contains(where: matches(wallTime:))
                if firesHere && instant >= first { fires.append(Date(timeIntervalSince1970: TimeInterval(instant))) }
                latestShown = shown
            }
        }
        return fires
    }
}

/// A small, seeded random number generator (SplitMix64), so random tests repeat exactly.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
