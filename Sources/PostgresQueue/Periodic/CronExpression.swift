import Foundation
import PostgresLocks

/// A cron expression: the wall-clock times at which a periodic job fires.
///
/// Five fields (`minute hour day-of-month month day-of-week`, firing at second 0) or six
/// (`second minute hour day-of-month month day-of-week`), each `*`, a value, a range `a-b`, a
/// step `*/n`, `a-b/n` or `a/n` (from `a` to the field's end), or a comma-separated list of
/// these. Months may be named `JAN`–`DEC` and days of the week `SUN`–`SAT` (any case); day of
/// the week 0 and 7 are both Sunday. `?` is the same as `*` in the two day fields. The macros
/// `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and `@hourly` stand
/// for `0 0 1 1 *`, `0 0 1 * *`, `0 0 * * 0`, `0 0 * * *` and `0 * * * *`.
///
/// As in classic cron, when both day fields are restricted (neither is exactly `*` or `?`), a
/// day matches when either matches: `0 0 1 * MON` fires on the 1st and on every Monday.
/// Otherwise a day must match both. An expression that can never fire (`0 0 30 2 *`) is
/// rejected; `0 0 29 2 *` fires every leap year.
///
/// ## Time zones and daylight saving time
///
/// Matching is on the wall-clock time in the time zone passed to ``nextFire(after:in:)`` and
/// ``previousFire(atOrBefore:in:)``; each matching wall-clock time fires exactly once:
///
/// - A wall-clock time that occurs twice (the clocks go back) fires at its **first**
///   occurrence only. With `30 1 * * *` in New York, 2026-11-01 fires at 01:30 EDT and not at
///   01:30 EST an hour later; `0 * * * *` fires at 01:00 EDT and next at 02:00 EST.
/// - A wall-clock time that does not exist (the clocks jump forward over it) fires at the
///   instant the clocks jump, the first instant after the gap. With `30 2 * * *` in New York,
///   2026-03-08 fires at 03:00 EDT. Several matches inside one gap (`*/15 * * * *`) fire once,
///   together, at that instant; if the time just after the gap also matches, still once.
///
/// Put differently, a matching wall-clock time fires at the first instant whose wall-clock
/// time is that time or later. Interval schedules (``PeriodicSchedule/every(_:anchor:)``) are
/// not affected by any of this.
///
/// Dates are proleptic Gregorian. Equal expressions have the same ``description``: the text
/// trimmed, single-spaced, names in upper case and macros in lower case. Encodes as that text.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    /// The expression as parsed: trimmed, single-spaced, names upper-cased, macros lower-cased.
    public let description: String

    let seconds, minutes, hours, daysOfMonth, months: CronValueSet
    /// 0 (Sunday) through 6 (Saturday); a 7 in the text is stored as 0.
    let daysOfWeek: CronValueSet
    /// Whether the day-of-month and the day-of-week fields are anything but `*` or `?`.
    let dayOfMonthIsRestricted, dayOfWeekIsRestricted: Bool

    init(
        description: String,
        seconds: CronValueSet, minutes: CronValueSet, hours: CronValueSet,
        daysOfMonth: CronValueSet, months: CronValueSet, daysOfWeek: CronValueSet,
        dayOfMonthIsRestricted: Bool, dayOfWeekIsRestricted: Bool
    ) {
        self.description = description
        self.seconds = seconds
        self.minutes = minutes
        self.hours = hours
        self.daysOfMonth = daysOfMonth
        self.months = months
        self.daysOfWeek = daysOfWeek
        self.dayOfMonthIsRestricted = dayOfMonthIsRestricted
        self.dayOfWeekIsRestricted = dayOfWeekIsRestricted
    }
}

extension CronExpression: Codable {
    /// Decodes an expression from its text, rejecting text ``init(_:)`` rejects.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            try self.init(text)
        } catch let error as PostgresLocksError {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.message)
        }
    }

    /// Encodes the expression as its ``description``.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
