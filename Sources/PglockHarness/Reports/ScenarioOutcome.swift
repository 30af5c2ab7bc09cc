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

/// Renders report rows as a plain-text table.
package func renderTable(_ outcomes: [ScenarioOutcome]) -> String {
    let header = ["scenario", "check", "result", "figures", "throughput"]
    let rows = outcomes.map { outcome -> [String] in
        let throughput = outcome.throughput.map { "\(Int($0.rounded())) \(outcome.unit ?? "ops/s")" } ?? "-"
        var detail = outcome.detail
        if let faults = outcome.faults, !faults.isZero { detail += "; \(faults.summary)" }
        return [outcome.scenario, outcome.check, outcome.resultText, detail, throughput]
    }
    let widths = header.indices.map { column in
        ([header] + rows).map { $0[column].count }.max() ?? 0
    }
    func line(_ cells: [String]) -> String {
        zip(cells, widths).map { $0.padding(toLength: $1) }.joined(separator: "  ").trimmingTrailingSpaces()
    }
    var text = line(header) + "\n"
    text += line(widths.map { String(repeating: "-", count: $0) }) + "\n"
    for row in rows { text += line(row) + "\n" }
    return text
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
