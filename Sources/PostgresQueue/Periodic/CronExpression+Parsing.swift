import Foundation
import PostgresLocks

extension CronExpression {
    /// Parses a cron expression (see ``CronExpression`` for the syntax).
    ///
    /// - Throws: `PostgresLocksError` with code `invalidArgument` naming the problem: a wrong
    ///   number of fields, an unknown macro or name, an empty list item, a value out of its
    ///   field's range, a step of 0, a reversed range, or a day-of-month and month that never
    ///   meet (`0 0 30 2 *`, `0 0 31 4,6,9,11 *`).
    public init(_ text: String) throws {
        let tokens = text.split(whereSeparator: \.isWhitespace).map(String.init)
        let quoted = tokens.joined(separator: " ")
        guard let first = tokens.first else {
            throw Self.invalid("cron expression is empty")
        }
        if first.hasPrefix("@") {
            let macro = first.lowercased()
            guard tokens.count == 1 else {
                throw Self.invalid("cron macro \"\(first)\" must stand alone in \"\(quoted)\"")
            }
            guard let expansion = Self.macros.first(where: { $0.name == macro })?.expansion else {
                let known = Self.macros.map(\.name).joined(separator: ", ")
                throw Self.invalid("unknown cron macro \"\(first)\"; expected one of \(known)")
            }
            try self.init(fields: expansion.split(separator: " ").map(String.init), description: macro, quoted: quoted)
            return
        }
        guard tokens.count == 5 || tokens.count == 6 else {
            throw Self.invalid(
                "cron expression \"\(quoted)\" has \(tokens.count) field\(tokens.count == 1 ? "" : "s"); expected 5 "
                    + "(minute hour day-of-month month day-of-week) or 6 (second minute hour day-of-month month day-of-week)"
            )
        }
        try self.init(fields: tokens, description: tokens.map { $0.uppercased() }.joined(separator: " "), quoted: quoted)
    }

    /// Parses five or six field texts; `quoted` is the whole expression, for messages.
    private init(fields: [String], description: String, quoted: String) throws {
        let fields = fields.count == 5 ? ["0"] + fields : fields
        let specs: [FieldSpec] = [.second, .minute, .hour, .dayOfMonth, .month, .dayOfWeek]
        let parsed = try zip(fields, specs).map { text, spec in try spec.parse(text, in: quoted) }
        self.init(
            description: description,
            seconds: parsed[0].values,
            minutes: parsed[1].values,
            hours: parsed[2].values,
            daysOfMonth: parsed[3].values,
            months: parsed[4].values,
            daysOfWeek: parsed[5].values,
            dayOfMonthIsRestricted: parsed[3].restricted,
            dayOfWeekIsRestricted: parsed[5].restricted
        )
        // Every month has every day of the week, so only a day of month alone can miss.
        if dayOfMonthIsRestricted && !dayOfWeekIsRestricted {
            let longestMonths = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
            let meets = (1...12).contains { month in
                self.months.contains(month) && (1...longestMonths[month - 1]).contains(where: self.daysOfMonth.contains)
            }
            guard meets else {
                throw Self.invalid(
                    "cron expression \"\(quoted)\" can never fire: day-of-month field \"\(fields[3])\" "
                        + "names no day that exists in month field \"\(fields[4])\""
                )
            }
        }
    }

    /// The macros and what they stand for.
    private static let macros: [(name: String, expansion: String)] = [
        ("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ]

    /// The error for text that is not a valid cron expression.
    static func invalid(_ message: String) -> PostgresLocksError {
        PostgresLocksError(code: .invalidArgument, message: message)
    }
}

/// One field of a cron expression: its name, range and value names.
private struct FieldSpec {
    let name: String
    /// The values the field's text may name.
    let range: ClosedRange<Int>
    /// What `*` stands for (day of week: 0–6, the 7 for Sunday being a repeat of 0).
    let starRange: ClosedRange<Int>
    /// Names for `range.lowerBound`, `range.lowerBound + 1`, ... (months, days of the week).
    var names: [String] = []
    /// Whether `?` may stand for `*`.
    var allowsQuestionMark = false

    static let second = FieldSpec(name: "second", range: 0...59, starRange: 0...59)
    static let minute = FieldSpec(name: "minute", range: 0...59, starRange: 0...59)
    static let hour = FieldSpec(name: "hour", range: 0...23, starRange: 0...23)
    static let dayOfMonth = FieldSpec(name: "day-of-month", range: 1...31, starRange: 1...31, allowsQuestionMark: true)
    static let month = FieldSpec(
        name: "month", range: 1...12, starRange: 1...12,
        names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
    static let dayOfWeek = FieldSpec(
        name: "day-of-week", range: 0...7, starRange: 0...6,
        names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], allowsQuestionMark: true
    )

    /// The values a field's text allows, and whether it restricts them (is not `*` or `?`).
    func parse(_ text: String, in quoted: String) throws -> (values: CronValueSet, restricted: Bool) {
        if text == "*" || (text == "?" && allowsQuestionMark) {
            return (CronValueSet.all(starRange), false)
        }
        var values = CronValueSet()
        for item in text.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            guard !item.isEmpty else {
                throw CronExpression.invalid("\(name) field \"\(text)\" has an empty list item in \"\(quoted)\"")
            }
            let parts = item.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard parts.count <= 2 else {
                throw CronExpression.invalid("\(name) field item \"\(item)\" has more than one step in \"\(quoted)\"")
            }
            let step = parts.count == 2 ? try parseStep(parts[1], in: quoted) : 1
            let bounds = try parseBounds(parts[0], stepped: parts.count == 2, in: quoted)
            for value in stride(from: bounds.lowerBound, through: bounds.upperBound, by: step) {
                values.insert(range.upperBound == 7 && value == 7 ? 0 : value)
            }
        }
        return (values, true)
    }

    /// The first and last value of a list item's part before any `/`.
    private func parseBounds(_ text: String, stepped: Bool, in quoted: String) throws -> ClosedRange<Int> {
        if text == "*" { return starRange }
        if text == "?" {
            let rule = allowsQuestionMark ? "must stand alone" : "is allowed only in the day-of-month and day-of-week fields"
            throw CronExpression.invalid("\(name) field: \"?\" \(rule) in \"\(quoted)\"")
        }
        let ends = text.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        switch ends.count {
        case 1:
            let value = try parseValue(text, in: quoted)
            // `a/n` runs from `a` to the end of the field.
            return stepped ? value...max(value, starRange.upperBound) : value...value
        case 2 where !ends[0].isEmpty && !ends[1].isEmpty:
            let lower = try parseValue(ends[0], in: quoted)
            let upper = try parseValue(ends[1], in: quoted)
            guard lower <= upper else {
                throw CronExpression.invalid("\(name) field range \"\(text)\" is reversed (\(lower) comes after \(upper)) in \"\(quoted)\"")
            }
            return lower...upper
        default:
            throw CronExpression.invalid("\(name) field range \"\(text)\" is not of the form a-b in \"\(quoted)\"")
        }
    }

    /// A number or name in the field's range.
    private func parseValue(_ text: String, in quoted: String) throws -> Int {
        if !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }) {
            guard let value = Int(text), range.contains(value) else {
                throw CronExpression.invalid(
                    "\(name) field \"\(text)\" is out of range \(range.lowerBound)–\(range.upperBound) in \"\(quoted)\""
                )
            }
            return value
        }
        if let index = names.firstIndex(of: text.uppercased()) {
            return range.lowerBound + index
        }
        let expected = names.isEmpty ? "a number" : "a number or a name \(names[0])–\(names[names.count - 1])"
        throw CronExpression.invalid("\(name) field \"\(text)\" is not \(expected) in \"\(quoted)\"")
    }

    /// The step after a `/`: 1 up to the number of values the field has.
    private func parseStep(_ text: String, in quoted: String) throws -> Int {
        let largest = starRange.count
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw CronExpression.invalid("\(name) field step \"\(text)\" is not a number in \"\(quoted)\"")
        }
        guard text.contains(where: { $0 != "0" }) else {
            throw CronExpression.invalid("\(name) field step \"\(text)\" must be at least 1 in \"\(quoted)\"")
        }
        guard let step = Int(text), step <= largest else {
            throw CronExpression.invalid("\(name) field step \"\(text)\" is out of range 1–\(largest) in \"\(quoted)\"")
        }
        return step
    }
}
