import Foundation
import PostgresLocks

/// A wall-clock date and time in the proleptic Gregorian calendar, with no time zone: what a
/// clock on the wall shows. Converts to and from "wall seconds", the seconds since
/// 1970-01-01 00:00:00 on that same wall clock, with integer arithmetic only.
struct CivilDateTime: Sendable, Hashable {
    var year, month, day: Int
    var hour, minute, second: Int

    init(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0) {
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
    }

    /// The wall-clock time `wallSeconds` seconds after 1970-01-01 00:00:00.
    init(wallSeconds: Int) {
        let days = wallSeconds.floorDivided(by: 86_400)
        let secondOfDay = wallSeconds - days * 86_400
        let (year, month, day) = Self.civilDate(fromDays: days)
        self.init(
            year: year, month: month, day: day,
            hour: secondOfDay / 3_600, minute: secondOfDay % 3_600 / 60, second: secondOfDay % 60
        )
    }

    /// Seconds since 1970-01-01 00:00:00 on the same wall clock.
    var wallSeconds: Int {
        Self.days(year: year, month: month, day: day) * 86_400 + hour * 3_600 + minute * 60 + second
    }

    /// The day of the week, 0 for Sunday through 6 for Saturday.
    var weekday: Int { Self.weekday(year: year, month: month, day: day) }

    /// The day of the week of a date, 0 for Sunday through 6 for Saturday.
    static func weekday(year: Int, month: Int, day: Int) -> Int {
        // 1970-01-01 was a Thursday.
        (days(year: year, month: month, day: day) + 4).floorModulo(7)
    }

    /// Whether `year` has a February 29.
    static func isLeapYear(_ year: Int) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    /// The number of days in a month of a year.
    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
    static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = y.floorDivided(by: 400)
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The date `days` days after 1970-01-01 (Howard Hinnant's `civil_from_days`).
    static func civilDate(fromDays days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = z.floorDivided(by: 146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }
}

extension Int {
    /// Division rounding towards negative infinity.
    func floorDivided(by divisor: Int) -> Int {
        let quotient = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }

    /// The remainder of ``floorDivided(by:)``: always in `0..<divisor` for a positive divisor.
    func floorModulo(_ divisor: Int) -> Int {
        self - floorDivided(by: divisor) * divisor
    }
}
