import Foundation

/// What a soak run found when it checked its invariants in the database afterwards. Every
/// count should be 0.
package struct SoakFindings: Sendable, Codable, Hashable {
    /// Pairs of committed critical sections of one key that overlapped in time (mutual exclusion broken).
    package var exclusionViolations = 0
    /// Keys whose guarded counter differs from the number of committed increments (a lost update).
    package var lostUpdates = 0
    /// Operations confirmed committed to the client but missing from the database.
    package var lostCommits = 0
    /// Gapless numbers handed out twice within a scope.
    package var duplicateNumbers = 0
    /// Numbers missing within a scope (1…max not all present).
    package var gaps = 0
    /// Scopes whose counter table disagrees with the numbers recorded alongside.
    package var counterMismatches = 0
    /// Ingested keys stored or handled more than once: effect rows of one key committed twice,
    /// or a key reported new to two calls.
    package var duplicateIngestions = 0
    /// Stored keys without their handler's effect, and effects without their stored key.
    package var ingestEffectMismatches = 0
    /// Keys a client saw accepted that are missing from the key table.
    package var lostIngestedKeys = 0
    /// Jobs not completed at the end (or confirmed enqueued and missing).
    package var lostJobs = 0
    /// Jobs whose side effect was written more than once.
    package var duplicateEffects = 0
    /// Side effects of jobs that do not exist or are not completed.
    package var orphanEffects = 0
    /// Advisory locks still held by the run's sessions once every call had returned.
    package var leakedLocks = 0
    /// Calls that did not return within their deadline plus the bound.
    package var hungCalls = 0

    /// Whether every invariant held.
    package var isClean: Bool { self == SoakFindings() }

    /// The broken invariants, readable.
    package var violations: [String] {
        var list: [String] = []
        func add(_ count: Int, _ what: String) { if count > 0 { list.append("\(count) \(what)") } }
        add(exclusionViolations, "overlapping committed critical sections")
        add(lostUpdates, "lost updates")
        add(lostCommits, "confirmed commits missing")
        add(duplicateNumbers, "duplicate numbers")
        add(gaps, "gaps")
        add(counterMismatches, "counter mismatches")
        add(duplicateIngestions, "keys ingested or handled twice")
        add(ingestEffectMismatches, "ingested keys without their effect (or effects without their key)")
        add(lostIngestedKeys, "accepted keys missing")
        add(lostJobs, "lost jobs")
        add(duplicateEffects, "duplicate job effects")
        add(orphanEffects, "orphan job effects")
        add(leakedLocks, "leaked locks")
        add(hungCalls, "hung calls")
        return list
    }

    /// Adds another set of findings.
    package mutating func add(_ other: SoakFindings) {
        exclusionViolations += other.exclusionViolations
        lostUpdates += other.lostUpdates
        lostCommits += other.lostCommits
        duplicateNumbers += other.duplicateNumbers
        gaps += other.gaps
        counterMismatches += other.counterMismatches
        duplicateIngestions += other.duplicateIngestions
        ingestEffectMismatches += other.ingestEffectMismatches
        lostIngestedKeys += other.lostIngestedKeys
        lostJobs += other.lostJobs
        duplicateEffects += other.duplicateEffects
        orphanEffects += other.orphanEffects
        leakedLocks += other.leakedLocks
        hungCalls += other.hungCalls
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
