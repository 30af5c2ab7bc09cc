import Foundation

/// What a soak run found when it checked its invariants in the database afterwards. Every
/// count should be 0.
package struct SoakFindings: Sendable, Codable, Hashable {
    /// Locks: pairs of committed critical sections of one key that overlapped in time (mutual
    /// exclusion broken); keys whose guarded counter differs from the number of committed
    /// increments (a lost update); operations confirmed committed to the client but missing from
    /// the database.
    package var exclusionViolations = 0, lostUpdates = 0, lostCommits = 0
    /// Gapless numbers: handed out twice within a scope; missing within a scope (1…max not all
    /// present); scopes whose counter table disagrees with the numbers recorded alongside.
    package var duplicateNumbers = 0, gaps = 0, counterMismatches = 0
    /// Ingestion: keys stored or handled more than once (effect rows of one key committed twice,
    /// or a key reported new to two calls); stored keys without their handler's effect, and
    /// effects without their stored key; keys a client saw accepted that are missing from the
    /// key table.
    package var duplicateIngestions = 0, ingestEffectMismatches = 0, lostIngestedKeys = 0
    /// Queue: jobs not completed at the end (or confirmed enqueued and missing); jobs whose side
    /// effect was written more than once; side effects of jobs that do not exist or are not
    /// completed.
    package var lostJobs = 0, duplicateEffects = 0, orphanEffects = 0
    /// Advisory locks still held by the run's sessions once every call had returned; calls that
    /// did not return within their deadline plus the bound.
    package var leakedLocks = 0, hungCalls = 0

    /// Findings with every count 0: nothing found yet.
    package init() {}

    /// Whether every invariant held.
    package var isClean: Bool { self == SoakFindings() }

    /// Every count with what it means: the one list ``violations`` and ``add(_:)`` go through.
    private static var counts: [(count: WritableKeyPath<SoakFindings, Int>, meaning: String)] {
        [
            (\.exclusionViolations, "overlapping committed critical sections"), (\.lostUpdates, "lost updates"),
            (\.lostCommits, "confirmed commits missing"), (\.duplicateNumbers, "duplicate numbers"), (\.gaps, "gaps"),
            (\.counterMismatches, "counter mismatches"), (\.duplicateIngestions, "keys ingested or handled twice"),
            (\.ingestEffectMismatches, "ingested keys without their effect (or effects without their key)"),
            (\.lostIngestedKeys, "accepted keys missing"), (\.lostJobs, "lost jobs"), (\.duplicateEffects, "duplicate job effects"),
            (\.orphanEffects, "orphan job effects"), (\.leakedLocks, "leaked locks"), (\.hungCalls, "hung calls"),
        ]
    }

    /// The broken invariants, readable.
    package var violations: [String] {
        Self.counts.compactMap { self[keyPath: $0.count] > 0 ? "\(self[keyPath: $0.count]) \($0.meaning)" : nil }
    }

    /// Adds another set of findings.
    package mutating func add(_ other: SoakFindings) {
        for (count, _) in Self.counts { self[keyPath: count] += other[keyPath: count] }
    }
}

/// The outcome of a soak run: what was done and injected, and what the checks found.
package struct SoakReport: Sendable, Codable {
    /// How long the faulty phase ran.
    package var seconds: Double
    /// What was counted.
    package var tallies: SoakTallies.Snapshot
    /// What the checks found.
    package var findings: SoakFindings
    /// Samples of unexpected errors.
    package var unexpectedErrorSamples: [String]
    /// The most frequent failures caused by faults (retried), with counts.
    package var faultSamples: [String] = []

    /// Whether every invariant held.
    package var passed: Bool { findings.isClean }

    /// A readable summary, several lines.
    package var summary: String {
        let t = tallies
        let f = findings
        var lines = [
            String(format: "soak: %.1f s under faults", seconds),
            "faults injected: \(t.terminations) backends terminated, \(t.restarts) server restarts, \(t.stormCancelled) cancellations, \(t.stormTimedOut) lock timeouts",
            "operations: \(t.lockSections) lock sections, \(t.numbers) gapless numbers, \(t.ingestBatches) ingest batches (\(t.ingestEvents) keys sent, \(t.ingestedKeys) new), \(t.jobsEnqueued) jobs (\(t.handlerRuns) handler runs), \(t.stormCalls) storm calls (\(t.stormAcquired) granted)",
            "retried after a fault: \(t.retried); ambiguous commits: \(t.ambiguousCommits); max cancel latency \(t.maxCancelLatencyMilliseconds) ms; max timeout overshoot \(t.maxTimeoutOvershootMilliseconds) ms",
            "found: \(f.exclusionViolations) exclusion violations, \(f.lostUpdates) lost updates, \(f.lostCommits) lost commits, \(f.duplicateNumbers) duplicates, \(f.gaps) gaps, \(f.counterMismatches) counter mismatches, \(f.duplicateIngestions) duplicate ingestions, \(f.ingestEffectMismatches) ingest effect mismatches, \(f.lostIngestedKeys) lost ingested keys, \(f.lostJobs) lost jobs, \(f.duplicateEffects) duplicate effects, \(f.orphanEffects) orphan effects, \(f.leakedLocks) leaked locks, \(f.hungCalls) hung calls",
        ]
        if t.strayCancels > 0 {
            lines.append("stray cancels (calls failed as cancelled that nobody cancelled): \(t.strayCancels)")
        }
        if t.unexpectedErrors > 0 {
            lines.append("unexpected errors: \(t.unexpectedErrors) (e.g. \(unexpectedErrorSamples.prefix(3).joined(separator: " | ")))")
        }
        lines.append(passed ? "verdict: PASS (every invariant held)" : "verdict: FAIL (\(f.violations.joined(separator: ", ")))")
        return lines.joined(separator: "\n")
    }
}
