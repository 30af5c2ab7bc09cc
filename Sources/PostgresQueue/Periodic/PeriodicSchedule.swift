import Foundation
import PostgresLocks

/// When a periodic job is due: a cron expression read in a time zone, or a fixed interval.
///
/// Its ticks are the instants the job is due. They are a pure function of the schedule, so
/// every instance of a service computes the same ticks, and a tick can name the job it enqueues.
public enum PeriodicSchedule: Sendable, Hashable, CustomStringConvertible {
    /// Ticks when the wall-clock time in `timeZone` matches the expression; see
    /// ``CronExpression`` for what happens when the clocks change.
    case cron(CronExpression, timeZone: TimeZone)
    /// Ticks at `anchor + k × interval` for every whole number `k`: fixed instants, unaffected
    /// by time zones and daylight saving time. Computed exactly on whole milliseconds, so ticks
    /// never drift. Prefer ``every(_:)``, which validates the interval; an interval under a
    /// millisecond never ticks.
    case every(Duration, anchor: Date)

    /// The longest interval ``every(_:)`` accepts: 100 years of 365 days.
    public static let maximumInterval = Duration.seconds(100 * 365 * 86_400)

    /// A cron schedule read in `timeZone` (GMT unless given).
    ///
    /// - Throws: `PostgresLocksError` with code `invalidArgument` if ``CronExpression/init(_:)``
    ///   rejects the text.
    public static func cron(_ text: String, timeZone: TimeZone = .gmt) throws -> PeriodicSchedule {
        .cron(try CronExpression(text), timeZone: timeZone)
    }

    /// Ticks every `interval`, anchored at the Unix epoch (1970-01-01 00:00:00 UTC), so every
    /// instance computes the same ticks: `every(.seconds(30))` ticks at :00 and :30 of each minute.
    ///
    /// - Throws: `PostgresLocksError` with code `invalidArgument` if the interval is shorter
    ///   than 1 second, longer than ``maximumInterval``, or not a whole number of milliseconds.
    public static func every(_ interval: Duration) throws -> PeriodicSchedule {
        try PostgresLocksError.require(interval >= .seconds(1), "interval \(interval) is shorter than 1 second")
        try PostgresLocksError.require(interval <= maximumInterval, "interval \(interval) is longer than 100 years")
        try PostgresLocksError.require(interval.components.attoseconds % attosecondsPerMillisecond == 0, "interval \(interval) is not a whole number of milliseconds")
        return .every(interval, anchor: Date(timeIntervalSince1970: 0))
    }

    /// The first tick strictly after `date`; nil if there is none (see ``CronExpression/nextFire(after:in:)``).
    public func nextTick(after date: Date) -> Date? {
        tick(.after, date)
    }

    /// The last tick at or before `date`; nil if there is none.
    public func previousTick(atOrBefore date: Date) -> Date? {
        tick(.atOrBefore, date)
    }

    /// The last tick strictly before `date`; nil if there is none.
    func previousTick(before date: Date) -> Date? {
        tick(.before, date)
    }

    /// Which tick a search looks for, relative to a date.
    private enum TickSearch {
        case after, atOrBefore, before
    }

    private func tick(_ search: TickSearch, _ date: Date) -> Date? {
        switch self {
        case .cron(let expression, let timeZone):
            switch search {
            case .after: return expression.nextFire(after: date, in: timeZone)
            case .atOrBefore: return expression.previousFire(atOrBefore: date, in: timeZone)
            case .before: return expression.previousFire(before: date, in: timeZone)
            }
        case .every:
            guard let grid = TickGrid(self), let index = grid.index(atOrBefore: date) else { return nil }
            switch search {
            case .after: return grid.first(from: index) { $0 > date }
            case .atOrBefore: return grid.last(from: index) { $0 <= date }
            case .before: return grid.last(from: index) { $0 < date }
            }
        }
    }

    /// `cron "0 * * * *" Europe/Berlin`, or `every 1m30s` (with `from` and the anchor when it
    /// is not the Unix epoch).
    public var description: String {
        switch self {
        case .cron(let expression, let timeZone):
            return "cron \"\(expression)\" \(timeZone.identifier)"
        case .every(let interval, let anchor):
            var text = "every \(Self.describe(milliseconds: TickGrid.milliseconds(in: interval) ?? 0))"
            if anchor != Date(timeIntervalSince1970: 0) { text += " from \(anchor.ISO8601Format())" }
            return text
        }
    }

    fileprivate static let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000

    /// `1d2h3m4s5ms`, leaving out units that are zero.
    private static func describe(milliseconds: Int) -> String {
        guard milliseconds > 0 else { return "0s" }
        let units: [(String, Int)] = [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)]
        var rest = milliseconds
        var text = ""
        for (name, size) in units where rest >= size {
            text += "\(rest / size)\(name)"
            rest %= size
        }
        return text
    }
}

/// The ticks of an interval schedule, `anchor + k × interval`, in whole milliseconds since
/// `Date`'s reference date.
private struct TickGrid {
    let anchor: Int
    let interval: Int

    init?(_ schedule: PeriodicSchedule) {
        guard case .every(let duration, let anchorDate) = schedule,
            let interval = Self.milliseconds(in: duration),
            let anchor = Self.milliseconds(since: anchorDate, rounding: .toNearestOrAwayFromZero)
        else { return nil }
        self.anchor = anchor
        self.interval = interval
    }

    /// A whole, positive number of milliseconds not above ``PeriodicSchedule/maximumInterval``
    /// (a finer remainder is dropped), or nil.
    static func milliseconds(in duration: Duration) -> Int? {
        guard duration > .zero, duration <= PeriodicSchedule.maximumInterval else { return nil }
        let (seconds, attoseconds) = duration.components
        let milliseconds = Int(seconds) * 1_000 + Int(attoseconds / PeriodicSchedule.attosecondsPerMillisecond)
        return milliseconds > 0 ? milliseconds : nil
    }

    /// Milliseconds since the reference date, or nil for dates too far out to schedule.
    private static func milliseconds(since date: Date, rounding rule: FloatingPointRoundingRule) -> Int? {
        let milliseconds = (date.timeIntervalSinceReferenceDate * 1_000).rounded(rule)
        guard milliseconds.isFinite, abs(milliseconds) < 1e16 else { return nil }
        return Int(milliseconds)
    }

    /// The index of the tick at or just before `date`, give or take one for rounding.
    func index(atOrBefore date: Date) -> Int? {
        milliseconds(since: date).map { ($0 - anchor).floorDivided(by: interval) }
    }

    private func milliseconds(since date: Date) -> Int? {
        Self.milliseconds(since: date, rounding: .down)
    }

    /// The date of tick `index`.
    func date(_ index: Int) -> Date {
        Date(timeIntervalSinceReferenceDate: TimeInterval(anchor + index * interval) / 1_000)
    }

    /// The first tick from about `index` on that passes `test` (a test true from some tick on).
    func first(from index: Int, where test: (Date) -> Bool) -> Date {
        var index = index
        while !test(date(index)) { index += 1 }
        while test(date(index - 1)) { index -= 1 }
        return date(index)
    }

    /// The last tick from about `index` back that passes `test` (a test true up to some tick).
    func last(from index: Int, where test: (Date) -> Bool) -> Date {
        var index = index
        while !test(date(index)) { index -= 1 }
        while test(date(index + 1)) { index += 1 }
        return date(index)
    }
}
