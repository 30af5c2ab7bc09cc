import Foundation
import PostgresLocks

extension CronExpression {
    /// Years searched for a match before giving up: a February 29 is at most 8 years away.
    static let searchYears = 8

    /// The first instant strictly after `date` at which the expression fires, reading
    /// wall-clock times in `timeZone` (see ``CronExpression`` for daylight saving time).
    ///
    /// Jumps field by field over the calendar (month, day, hour, minute, second), so a call is
    /// cheap however far away the answer is. Nil only when nothing fires within 8 years, which
    /// cannot happen to a parsed expression, or for dates hundreds of millennia out.
    public func nextFire(after date: Date, in timeZone: TimeZone) -> Date? {
        guard let second = WallClock.second(atOrBefore: date) else { return nil }
        return firstFire(atOrAfter: second + 1, clock: WallClock(timeZone: timeZone)).map(WallClock.date(atSecond:))
    }

    /// The last instant at or before `date` at which the expression fires, reading wall-clock
    /// times in `timeZone`; the mirror image of ``nextFire(after:in:)``.
    public func previousFire(atOrBefore date: Date, in timeZone: TimeZone) -> Date? {
        guard let second = WallClock.second(atOrBefore: date) else { return nil }
        return lastFire(atOrBefore: second, clock: WallClock(timeZone: timeZone)).map(WallClock.date(atSecond:))
    }

    /// The last instant strictly before `date` at which the expression fires.
    func previousFire(before date: Date, in timeZone: TimeZone) -> Date? {
        guard let second = WallClock.second(atOrAfter: date) else { return nil }
        return lastFire(atOrBefore: second - 1, clock: WallClock(timeZone: timeZone)).map(WallClock.date(atSecond:))
    }

    /// Whether a wall-clock date and time matches every field (no time zone involved).
    package func matches(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) -> Bool {
        months.contains(month) && dayMatches(year: year, month: month, day: day)
            && hours.contains(hour) && minutes.contains(minute) && seconds.contains(second)
    }

    // A matching wall time fires at the first instant showing it or a later time (for a time
    // skipped by a gap, the instant the clocks jump). That instant grows with the wall time,
    // and it is at or after `instant` exactly when the wall time is later than any the clock
    // showed before `instant`; the search itself runs on wall times only.

    private func firstFire(atOrAfter instant: Int, clock: WallClock) -> Int? {
        let unseen = clock.latestWallTime(atOrBefore: instant - 1) + 1
        return nextMatch(atOrAfter: unseen).map(clock.firstInstant(showing:))
    }

    private func lastFire(atOrBefore instant: Int, clock: WallClock) -> Int? {
        previousMatch(atOrBefore: clock.latestWallTime(atOrBefore: instant)).map(clock.firstInstant(showing:))
    }

    /// Whether a date matches the day fields: either of them when both are restricted (classic
    /// cron), otherwise both (an unrestricted field allows every day).
    func dayMatches(year: Int, month: Int, day: Int) -> Bool {
        let dayOfMonth = daysOfMonth.contains(day)
        let dayOfWeek = daysOfWeek.contains(CivilDateTime.weekday(year: year, month: month, day: day))
        return dayOfMonthIsRestricted && dayOfWeekIsRestricted ? dayOfMonth || dayOfWeek : dayOfMonth && dayOfWeek
    }

    /// The first matching wall time at or after `wallTime`, in wall seconds.
    func nextMatch(atOrAfter wallTime: Int) -> Int? {
        var time = CivilDateTime(wallSeconds: wallTime)
        let lastYear = time.year + Self.searchYears
        while time.year <= lastYear {
            guard let month = months.next(atOrAfter: time.month) else {
                time = CivilDateTime(year: time.year + 1, month: 1, day: 1)
                continue
            }
            if month != time.month { time = CivilDateTime(year: time.year, month: month, day: 1) }
            let lastDay = CivilDateTime.daysInMonth(year: time.year, month: time.month)
            guard let day = (time.day...lastDay).first(where: { dayMatches(year: time.year, month: time.month, day: $0) }) else {
                time = CivilDateTime(wallSeconds: CivilDateTime(year: time.year, month: time.month, day: lastDay).wallSeconds + 86_400)
                continue
            }
            if day != time.day { time = CivilDateTime(year: time.year, month: time.month, day: day) }
            guard let hour = hours.next(atOrAfter: time.hour) else {
                time = CivilDateTime(wallSeconds: time.start(of: 86_400) + 86_400)
                continue
            }
            if hour != time.hour { (time.hour, time.minute, time.second) = (hour, 0, 0) }
            guard let minute = minutes.next(atOrAfter: time.minute) else {
                time = CivilDateTime(wallSeconds: time.start(of: 3_600) + 3_600)
                continue
            }
            if minute != time.minute { (time.minute, time.second) = (minute, 0) }
            guard let second = seconds.next(atOrAfter: time.second) else {
                time = CivilDateTime(wallSeconds: time.start(of: 60) + 60)
                continue
            }
            time.second = second
            return time.wallSeconds
        }
        return nil
    }

    /// The last matching wall time at or before `wallTime`, in wall seconds.
    func previousMatch(atOrBefore wallTime: Int) -> Int? {
        var time = CivilDateTime(wallSeconds: wallTime)
        let firstYear = time.year - Self.searchYears
        while time.year >= firstYear {
            guard let month = months.previous(atOrBefore: time.month) else {
                time = CivilDateTime(year: time.year - 1, month: 12, day: 31, hour: 23, minute: 59, second: 59)
                continue
            }
            if month != time.month {
                let lastDay = CivilDateTime.daysInMonth(year: time.year, month: month)
                time = CivilDateTime(year: time.year, month: month, day: lastDay, hour: 23, minute: 59, second: 59)
            }
            guard let day = (1...time.day).last(where: { dayMatches(year: time.year, month: time.month, day: $0) }) else {
                time = CivilDateTime(wallSeconds: CivilDateTime(year: time.year, month: time.month, day: 1).wallSeconds - 1)
                continue
            }
            if day != time.day {
                time = CivilDateTime(year: time.year, month: time.month, day: day, hour: 23, minute: 59, second: 59)
            }
            guard let hour = hours.previous(atOrBefore: time.hour) else {
                time = CivilDateTime(wallSeconds: time.start(of: 86_400) - 1)
                continue
            }
            if hour != time.hour { (time.hour, time.minute, time.second) = (hour, 59, 59) }
            guard let minute = minutes.previous(atOrBefore: time.minute) else {
                time = CivilDateTime(wallSeconds: time.start(of: 3_600) - 1)
                continue
            }
            if minute != time.minute { (time.minute, time.second) = (minute, 59) }
            guard let second = seconds.previous(atOrBefore: time.second) else {
                time = CivilDateTime(wallSeconds: time.start(of: 60) - 1)
                continue
            }
            time.second = second
            return time.wallSeconds
        }
        return nil
    }
}

extension CivilDateTime {
    /// The wall seconds at the start of the day (86 400), hour (3 600) or minute (60) holding this time.
    fileprivate func start(of unit: Int) -> Int {
        wallSeconds.floorDivided(by: unit) * unit
    }
}
