import EphemeralPostgres
import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Subprocess
import Testing
#if canImport(System)
import System
#else
import SystemPackage
#endif
import PglockHarness

/// Runs `pglock soak --json` with `arguments` in its own process at the lowest priority (and
/// with it the throwaway server it starts, unless given `--database-url`), so the rest of the
/// test suite, which runs in parallel, keeps its timing; decodes its report, and records it:
/// printed as one block (the figures for the README) and written to the figures file.
///
/// The workload runs in a separate process on purpose: hundreds of busy tasks in the test
/// process would hold up every other test's event loops and timers.
func runSoak(_ name: String, _ arguments: [String]) async throws -> SoakReport {
    let result = try await runPglockSoak("pglock soak (\(name))", arguments, limit: .seconds(180))
    let output = result.standardOutput
    guard let report = try? JSONDecoder().decode(SoakReport.self, from: Data(output.utf8)) else {
        throw TestFailure("pglock soak (\(name)) printed no report (\(result.terminationStatus)): \(output.suffix(1000)) \(result.standardError.suffix(3000))")
    }
    print("── \(name)\n\(report.summary)")
    if ProcessInfo.processInfo.environment["SOAK_FAULT_DETAIL"] != nil { print("failures by kind: \(report.faultSamples)") }
    FaultFigures.shared.record(name, report)
    #expect(result.terminationStatus.isSuccess == report.passed, "the exit status tells the verdict")
    return report
}

/// What a `pglock soak` process printed, and how it ended.
typealias SoakProcessResult = ExecutionResult<Void, StringOutput<Unicode.UTF8>, StringOutput<Unicode.UTF8>>

/// Runs `pglock soak --json` with `arguments` at the lowest priority, holding a server slot,
/// within `limit`.
func runPglockSoak(_ what: String, _ arguments: [String], limit: Duration) async throws -> SoakProcessResult {
    try await ServerTestSlots.withSlot {
        try await withinTimeLimit(limit, what) {
            try await Subprocess.run(
                .path(FilePath("/usr/bin/nice")),
                arguments: Arguments(["-n", "19", try pglockExecutable(), "soak", "--json"] + arguments),
                input: .none, output: .string(limit: 1 << 22), error: .string(limit: 1 << 22)
            )
        }
    }
}

/// Waits until the rest of the test suite has finished with the shared server: no test
/// database (`t_…`) for a second. The fault scenarios load a 2-core machine hard enough to
/// upset other tests' timing (2 s response timeouts, a 300 ms wait bounded by 3 s), so they run
/// once those are done. Gives up waiting after `limit` and goes on.
func afterTheOtherTests(limit: Duration = .seconds(150)) async throws {
    let server = try await TestDatabase.server()
    try await TestDatabase.withAdminConnection(server) { connection in
        var quietPolls = 0
        do {
            try await waitUntil(timeout: limit, pollEvery: .milliseconds(100), "the other tests have finished") {
                let rows = try await connection.query(#"SELECT count(*)::int FROM pg_database WHERE datname LIKE 't\_%'"#, logger: TestDatabase.logger).collect()
                quietPolls = try rows[0].decode(Int.self) == 0 ? quietPolls + 1 : 0
                return quietPolls >= 10
            }
        } catch is TestFailure {
            // Still busy after the limit: run anyway.
        }
    }
}

/// Checks what every fault scenario promises.
func expectClean(_ report: SoakReport, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(report.findings.isClean, "broken invariants: \(report.findings.violations)\n\(report.summary)", sourceLocation: sourceLocation)
    #expect(report.tallies.unexpectedErrors == 0, "unexpected errors: \(report.unexpectedErrorSamples)", sourceLocation: sourceLocation)
}

/// Advisory locks in the test's database, held by anyone.
func advisoryLocksInDatabase(_ db: TestContext) async throws -> Int {
    try await db.scalar("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", as: Int.self)
}

/// The figures of every fault scenario that ran in this process, written to
/// `.build/reliability-figures.txt` as they come in (for the README's reliability section).
final class FaultFigures: Sendable {
    static let shared = FaultFigures()
    private let lines = LockedBox<[String]>([])

    func record(_ name: String, _ report: SoakReport) {
        let t = report.tallies, f = report.findings
        let line = "\(name): \(t.terminations) terminated, \(t.restarts) restarts, \(t.stormCancelled) cancelled, \(t.stormTimedOut) timed out | "
            + "\(t.lockSections) lock sections, \(t.numbers) numbers, \(t.ingestBatches) ingest batches (\(t.ingestEvents) keys sent, \(t.ingestedKeys) new), "
            + "\(t.jobsEnqueued) jobs, \(t.stormCalls) storm calls | "
            + "duplicates \(f.duplicateNumbers + f.duplicateEffects + f.duplicateIngestions), gaps \(f.gaps), lost jobs \(f.lostJobs), "
            + "lost commits \(f.lostCommits + f.lostIngestedKeys), ingest effect mismatches \(f.ingestEffectMismatches), "
            + "exclusion violations \(f.exclusionViolations), leaked locks \(f.leakedLocks), hung \(f.hungCalls)"
        let all = lines.withLock { $0.append(line); return $0 }
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/reliability-figures.txt")
        try? Data((all.joined(separator: "\n") + "\n").utf8).write(to: path)
    }
}

/// A log handler that keeps every message with its metadata, at every level.
struct CapturingLogHandler: LogHandler {
    let messages: LockedBox<[String]>
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let error = event.error.map { " error: \(String(reflecting: $0))" } ?? ""
        messages.withLock { $0.append("\(event.level) \(event.source) \(event.message) \(merged)\(error)") }
    }

    /// A trace-level logger writing into `messages`.
    static func logger(into messages: LockedBox<[String]>) -> Logger {
        var logger = Logger(label: "captured") { _ in CapturingLogHandler(messages: messages) }
        logger.logLevel = .trace
        return logger
    }
}
