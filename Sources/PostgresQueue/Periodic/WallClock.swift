import Foundation
import PostgresLocks

/// How a time zone's wall clock relates to instants, in whole seconds.
///
/// Instants are seconds since 1970-01-01 00:00:00 UTC; wall times are seconds since
/// 1970-01-01 00:00:00 on the zone's wall clock (see ``CivilDateTime``). At instant `i` the
/// clock shows `i + offset(i)`. The clock jumps forward over a gap when the offset grows
/// (spring forward) and shows a stretch twice when it shrinks (fall back). The mapping assumes
/// a zone changes its offset at most once within ``window`` seconds, true of every real zone.
struct WallClock: Sendable {
    /// The zone whose clock this is.
    let timeZone: TimeZone

    /// Seconds either side of a wall time searched for an offset change: more than the
    /// largest UTC offset, so the window brackets every instant showing that wall time.
    static let window = 86_400

    /// Seconds from 1970-01-01 to 2001-01-01, `Date`'s reference date.
    private static let referenceDateOffset = 978_307_200

    /// The zone's UTC offset at `instant`, in seconds.
    func offset(at instant: Int) -> Int {
        timeZone.secondsFromGMT(for: Self.date(atSecond: instant))
    }

    /// The latest wall time the clock has shown at or before `instant`.
    ///
    /// That is the wall time at `instant`, except while the clock repeats a stretch after
    /// falling back: then it is the last wall time shown before it fell back.
    func latestWallTime(atOrBefore instant: Int) -> Int {
        let current = offset(at: instant)
        let earlier = offset(at: instant - Self.window)
        guard earlier > current else { return instant + current }
        let change = firstOffsetChange(after: instant - Self.window, through: instant)
        return max(instant + current, change - 1 + earlier)
    }

    /// The first instant at which the clock shows `wallTime` or later.
    ///
    /// For a wall time the clock shows twice, its first occurrence; for one it skips (inside a
    /// spring-forward gap), the instant the clock jumps over it.
    func firstInstant(showing wallTime: Int) -> Int {
        let before = offset(at: wallTime - Self.window)
        let after = offset(at: wallTime + Self.window)
        guard before != after else {
            let instant = wallTime - before
            let actual = offset(at: instant)
            // Two changes inside the window (no real zone does this): take the offset in force.
            return actual == before ? instant : wallTime - actual
        }
        let change = firstOffsetChange(after: wallTime - Self.window, through: wallTime + Self.window)
        // Shown before the change at the old offset; otherwise shown (or jumped to) after it.
        return wallTime - before < change ? wallTime - before : max(change, wallTime - after)
    }

    /// The first instant in `lower + 1 ... upper` whose offset differs from the one at `lower`;
    /// the offset at `upper` must differ. A binary search: about 17 look-ups for a day.
    private func firstOffsetChange(after lower: Int, through upper: Int) -> Int {
        let base = offset(at: lower)
        var low = lower
        var high = upper
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if offset(at: middle) == base { low = middle } else { high = middle }
        }
        return high
    }

    /// The whole second at or before `date`; nil for dates too far out to schedule.
    static func second(atOrBefore date: Date) -> Int? {
        let interval = date.timeIntervalSinceReferenceDate
        guard interval.isFinite, abs(interval) < 1e13 else { return nil }
        return Int(interval.rounded(.down)) + referenceDateOffset
    }

    /// The whole second at or after `date`; nil for dates too far out to schedule.
    static func second(atOrAfter date: Date) -> Int? {
        let interval = date.timeIntervalSinceReferenceDate
        guard interval.isFinite, abs(interval) < 1e13 else { return nil }
        return Int(interval.rounded(.up)) + referenceDateOffset
    }

    /// The date at a whole second since 1970 (exact: whole seconds convert without rounding).
    static func date(atSecond second: Int) -> Date {
        Date(timeIntervalSinceReferenceDate: TimeInterval(second - referenceDateOffset))
    }
}
