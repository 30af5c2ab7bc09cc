import PglockHarness
import Testing

/// `pglock demo`'s final table fits a terminal: no line wider than 120 columns.
@Suite("pglock demo: the report table")
struct DemoTableTests {
    /// Rows like the demo's, with its longest checks and figures, faults and a skip.
    static var outcomes: [ScenarioOutcome] {
        var rows: [ScenarioOutcome] = [
            ScenarioOutcome(scenario: "version-race", check: "no lock: MAX+1 race produces duplicates", passed: nil,
                            detail: "24 writers, 6000 inserts into 50 targets: 1437 duplicate versions, 0 gaps (expected without a lock)")
                .rate(6000, per: .seconds(3), unit: "tx/s"),
            ScenarioOutcome(scenario: "version-race", check: "advisory-xact-lock: versions unique and gapless", passed: true,
                            detail: "24 writers, 6000 inserts into 50 targets: 0 duplicate versions, 0 gaps, every target 1…120")
                .rate(6000, per: .milliseconds(2500), unit: "tx/s"),
            ScenarioOutcome(scenario: "exactly-once-ingestion", check: "each event stored once, one effect per event, counters exact", passed: true,
                            detail: "12 consumers redelivering 20000 events 3 times with random crashes: 20000 stored, 20000 effects, 20000 distinct keys, counters 20000"),
            ScenarioOutcome(scenario: "entity-and-row-locks", check: "skip-locked claims never overlap; NOWAIT fails fast with lockNotAvailable", passed: true,
                            detail: "16 claimers, 4000 rows: 0 double claims; NOWAIT answered lockNotAvailable in 2 ms"),
            ScenarioOutcome(scenario: "leader-failover", check: "fenced writes of a deposed leader are rejected", passed: true,
                            detail: "5/5 old-token writes rejected, 0 stored; 5/5 new-token writes stored"),
            .skipped("leader-election-behind-a-transaction-pooling-proxy", reason: "needs a session (transaction pooling detected)"),
        ]
        var faulty = ScenarioOutcome(scenario: "queue-drain", check: "every job completed exactly once despite killed workers", passed: false,
                                     detail: "8 workers, 50000 jobs: 49998 completed, 2 completed twice, 0 lost; p99 pickup 12 ms; leases reclaimed 37; \(String(repeating: "x", count: 150))")
        faulty.faults = FaultCounts(connectionLosses: 12, reruns: 7, locksLost: 3)
        rows.append(faulty.rate(50000, per: .seconds(7), unit: "jobs/s"))
        return rows
    }

    @Test func everyLineFitsIn120Columns() {
        let table = renderTable(Self.outcomes)
        let lines = table.split(separator: "\n", omittingEmptySubsequences: false)
        for line in lines {
            #expect(line.count <= 120, "\(line.count) columns: \(line)")
        }
        // Everything is still there (wrapped, so read with each run of white space as one
        // space): each scenario, verdict, figure and the faults.
        let flowing = table.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for word in ["version-race", "PASS", "FAIL", "shown", "skipped", "1437 duplicate versions", "faults survived: 12 lost connections retried, 7 transactions re-run", "jobs/s", "2400 tx/s"] {
            #expect(flowing.contains(word), "\(word) missing from:\n\(table)")
        }
        // The figures sit on their own indented line under their row.
        #expect(lines.contains { $0.hasPrefix("    24 writers, 6000 inserts") })
    }

    @Test func aNarrowerTableStaysNarrower() {
        for width in [80, 100, 120] {
            for line in renderTable(Self.outcomes, width: width).split(separator: "\n") {
                #expect(line.count <= width, "width \(width): \(line.count) columns: \(line)")
            }
        }
    }
}
