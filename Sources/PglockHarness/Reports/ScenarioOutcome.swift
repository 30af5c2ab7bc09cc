/// One row of the demo's report: a scenario, what was checked, and whether it held.
package struct ScenarioOutcome: Codable, Sendable {
    /// The scenario's name.
    package var scenario: String
    /// What was checked, in a few words.
    package var check: String
    /// Whether the invariant held (`nil` for rows that only show a hazard, not a promise).
    package var passed: Bool?
    /// The figures behind the verdict.
    package var detail: String
    /// Operations per second, if the scenario measures throughput.
    package var throughput: Double?
    /// What the throughput counts ("tx/s").
    package var unit: String?
    /// Set when the scenario did not run here (it needs what this server path lacks).
    package var skipped: Bool?
    /// The connection faults the scenario went through (lost connections retried,
    /// transactions re-run), counted over the whole scenario; set on its last row.
    package var faults: FaultCounts?

    /// A row without throughput, skip or faults (see ``rate(_:per:unit:)``).
    package init(scenario: String, check: String, passed: Bool?, detail: String) {
        self.scenario = scenario
        self.check = check
        self.passed = passed
        self.detail = detail
    }

    /// A row for a scenario that was not run, saying why.
    package static func skipped(_ scenario: String, reason: String) -> ScenarioOutcome {
        var outcome = ScenarioOutcome(scenario: scenario, check: "-", passed: nil, detail: "skipped: \(reason)")
        outcome.skipped = true
        return outcome
    }

    /// The same row with its throughput: `count` operations over `elapsed`, in `unit` ("tx/s").
    package func rate(_ count: some BinaryInteger, per elapsed: Duration, unit: String) -> ScenarioOutcome {
        var outcome = self
        outcome.throughput = Double(count) / seconds(elapsed)
        outcome.unit = unit
        return outcome
    }

    /// PASS, FAIL, shown (a row without a verdict) or skipped.
    package var resultText: String {
        if skipped == true { return "skipped" }
        switch passed {
        case true?: return "PASS"
        case false?: return "FAIL"
        case nil: return "shown"
        }
    }
}

/// Renders report rows as a plain-text table at most `width` columns wide: scenario, check,
/// result and throughput on one line, the figures (and faults) below it, indented and wrapped.
/// A cell too long for its column wraps onto further lines of its row.
package func renderTable(_ outcomes: [ScenarioOutcome], width: Int = ScenarioTable.defaultWidth) -> String {
    let width = max(width, ScenarioTable.minimumWidth)
    let header = ["scenario", "check", "result", "throughput"]
    let rows = outcomes.map { outcome -> (cells: [String], detail: String) in
        let throughput = outcome.throughput.map { "\(Int($0.rounded())) \(outcome.unit ?? "ops/s")" } ?? "-"
        var detail = outcome.detail
        if let faults = outcome.faults, !faults.isZero { detail += "; \(faults.summary)" }
        return ([outcome.scenario, outcome.check, outcome.resultText, throughput], detail)
    }
    let gap = 2
    var widths = header.indices.map { column in
        ([header] + rows.map(\.cells)).map { $0[column].count }.max() ?? 0
    }
    // The check column takes what the others leave; the scenario column is capped first.
    widths[0] = min(widths[0], ScenarioTable.scenarioColumnLimit)
    widths[3] = min(widths[3], ScenarioTable.throughputColumnLimit)
    let others = widths[0] + widths[2] + widths[3] + gap * (header.count - 1)
    widths[1] = max(10, min(widths[1], width - others))

    func lines(_ cells: [String]) -> [String] {
        let wrapped = zip(cells, widths).map { wrap($0, width: $1) }
        let height = wrapped.map(\.count).max() ?? 1
        return (0..<height).map { index in
            zip(wrapped, widths).map { cell, columnWidth in
                (index < cell.count ? cell[index] : "").padding(toLength: columnWidth)
            }.joined(separator: String(repeating: " ", count: gap)).trimmingTrailingSpaces()
        }
    }
    var text = lines(header).joined(separator: "\n") + "\n"
    text += lines(widths.map { String(repeating: "-", count: $0) }).joined(separator: "\n") + "\n"
    let indent = String(repeating: " ", count: ScenarioTable.detailIndent)
    for row in rows {
        text += lines(row.cells).joined(separator: "\n") + "\n"
        if !row.detail.isEmpty {
            for line in wrap(row.detail, width: width - ScenarioTable.detailIndent) { text += indent + line + "\n" }
        }
    }
    return text
}

/// The layout of ``renderTable(_:width:)``.
package enum ScenarioTable {
    /// The table's width when none is given: fits a 100-column terminal.
    package static let defaultWidth = 100
    /// The narrowest table drawn.
    package static let minimumWidth = 60
    /// The widest the scenario column gets; longer names wrap.
    static let scenarioColumnLimit = 24
    /// The widest the throughput column gets.
    static let throughputColumnLimit = 16
    /// How far the figures line is indented under its row.
    static let detailIndent = 4
}

/// `text` in lines of at most `width` characters, broken at spaces (a word longer than a line
/// is cut); at least one line.
func wrap(_ text: String, width: Int) -> [String] {
    let width = max(1, width)
    var lines: [String] = []
    var current = ""
    for word in text.split(separator: " ", omittingEmptySubsequences: true) {
        var word = Substring(word)
        if current.isEmpty, word.count <= width {
            current = String(word)
        } else if current.count + 1 + word.count <= width {
            current += " " + word
        } else {
            if !current.isEmpty { lines.append(current) }
            while word.count > width {
                lines.append(String(word.prefix(width)))
                word = word.dropFirst(width)
            }
            current = String(word)
        }
    }
    lines.append(current)
    return lines
}

private extension String {
    func padding(toLength length: Int) -> String {
        count >= length ? self : self + String(repeating: " ", count: length - count)
    }

    func trimmingTrailingSpaces() -> String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}
