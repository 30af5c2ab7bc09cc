import EphemeralPostgres
import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Subprocess
import Synchronization
import Testing
#if canImport(System)
import System
#else
import SystemPackage
#endif
import PglockHarness

/// `pglock demo` against a server whose sessions are terminated under it, as a failover or an
/// administrator does: every scenario must still hold its invariant (checked by the demo in the
/// database) and the demo must exit 0.
///
/// Each test starts a throwaway server of its own, runs the built `pglock demo --json
/// --database-url <it>` as a subprocess and, while it runs, terminates one of the demo's
/// backends (`application_name = 'pglock'`, the pool and the leader-election sessions) every
/// 300–800 ms with `pg_terminate_backend`; one test also crashes the server once mid-run
/// (`pg_ctl stop -m immediate`, then start on the same data). The server keeps commits across
/// the crash (`synchronous_commit` on; `fsync` off, which only matters for an operating-system
/// crash), so a commit the demo was told about cannot vanish.
@Suite("pglock demo under faults: backends terminated, server restarted", .serialized, .serverSlot)
struct DemoUnderFaultsTests {
    @Test func demoHoldsEveryInvariantWhileItsBackendsAreTerminated() async throws {
        try await afterTheOtherTests()
        let run = try await runDemoUnderFaults(restartAfterTerminations: nil)
        run.expectClean()
        #expect(run.terminations >= 20, "too few terminations to mean anything: \(run.terminations)")
        #expect(run.faults.connectionLosses + run.faults.reruns > 0, "the demo never noticed a fault: \(run.summary)")
    }

    @Test func demoHoldsEveryInvariantWhileItsBackendsAreTerminatedAndTheServerCrashesOnce() async throws {
        try await afterTheOtherTests()
        // A moment chosen at random, as the number of terminations the demo has survived first,
        // so that over many runs each scenario gets its turn (DEMO_FAULTS_RESTART_AFTER_TERMINATIONS
        // picks one, to run a given scenario across the crash again).
        let chosen = ProcessInfo.processInfo.environment["DEMO_FAULTS_RESTART_AFTER_TERMINATIONS"].flatMap { Int($0) }
        let restartAfter = chosen ?? Int.random(in: 10...50)
        let run = try await runDemoUnderFaults(restartAfterTerminations: restartAfter)
        run.expectClean()
        #expect(run.restarted, "the demo finished before the restart after \(restartAfter) terminations: \(run.summary)")
        #expect(run.terminations >= 10, "too few terminations to mean anything: \(run.terminations)")
    }
}

/// What a demo run under faults did.
private struct DemoFaultRun {
    var status: TerminationStatus
    var report: DemoReport?
    var output: String
    var errors: String
    var terminations: Int
    var restarted: Bool
    var elapsed: Duration

    var faults: FaultCounts {
        (report?.outcomes ?? []).compactMap(\.faults).reduce(FaultCounts()) {
            FaultCounts(connectionLosses: $0.connectionLosses + $1.connectionLosses, reruns: $0.reruns + $1.reruns, locksLost: $0.locksLost + $1.locksLost)
        }
    }

    var summary: String {
        "\(format(elapsed)), \(terminations) backends terminated, restarted: \(restarted); demo: \(faults.summary)"
    }

    func expectClean(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(status.isSuccess, "pglock demo exited with \(status): \(errors.suffix(4000))", sourceLocation: sourceLocation)
        guard let report else {
            Issue.record("pglock demo printed no report: \(output.suffix(1000)) \(errors.suffix(4000))", sourceLocation: sourceLocation)
            return
        }
        let failed = report.outcomes.filter { $0.passed == false }
        #expect(failed.isEmpty, "FAIL rows: \(failed.map { "\($0.scenario): \($0.check): \($0.detail)" })", sourceLocation: sourceLocation)
        #expect(report.passed, sourceLocation: sourceLocation)
        #expect(report.outcomes.contains { $0.passed == true }, "no scenario ran", sourceLocation: sourceLocation)
    }
}

/// The demo's `--json` report.
private struct DemoReport: Decodable {
    var passed: Bool
    var seconds: Double
    var outcomes: [ScenarioOutcome]
}

/// Runs the demo against a server of its own while terminating its backends; crashes and
/// restarts the server once the demo has survived `restartAfterTerminations` terminations, if
/// given. Bounded to 170 s.
private func runDemoUnderFaults(restartAfterTerminations: Int?) async throws -> DemoFaultRun {
    let logger = {
        var logger = Logger(label: "demo-under-faults")
        logger.logLevel = .warning
        return logger
    }()
    let configuration = EphemeralPostgres.Configuration(settings: ["fsync": "off", "deadlock_timeout": "100ms"])
    return try await EphemeralPostgres.withServer(configuration, logger: logger) { server in
        let url = server.url()
        let state = FaultInjection()
        let started = ContinuousClock.now
        try await withinTimeLimit(.seconds(170), "pglock demo under faults") {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    defer { state.stop() }
                    let result = try await Subprocess.run(
                        .path(FilePath(try pglockExecutable())),
                        arguments: Arguments(["demo", "--json", "--database-url", url]),
                        input: .none, output: .string(limit: 1 << 22), error: .string(limit: 1 << 22)
                    )
                    state.finished(result.terminationStatus, output: result.standardOutput, errors: result.standardError)
                }
                group.addTask {
                    await terminateDemoBackends(server: server, state: state, logger: logger)
                }
                if let restartAfterTerminations {
                    group.addTask {
                        try await waitUntil(timeout: .seconds(170), pollEvery: .milliseconds(20), "the demo has survived \(restartAfterTerminations) terminations") {
                            state.isStopped || state.terminationCount >= restartAfterTerminations
                        }
                        guard !state.isStopped else { return }
                        print("crashing the server \(format(ContinuousClock.now - started)) into the demo")
                        try await server.stopServer(immediate: true)
                        try await server.startServer()
                        state.restarted()
                    }
                }
                try await group.waitForAll()
            }
        }
        let (status, output, errors) = try #require(state.demoResult)
        let run = DemoFaultRun(
            status: status,
            report: try? JSONDecoder().decode(DemoReport.self, from: Data(output.utf8)),
            output: output, errors: errors,
            terminations: state.terminationCount, restarted: state.didRestart,
            elapsed: ContinuousClock.now - started
        )
        print("── pglock demo under faults: \(run.summary)")
        if let report = run.report {
            print(renderTable(report.outcomes), terminator: "")
        }
        return run
    }
}

/// Terminates backends of the demo (`application_name = 'pglock'`) one at a time, once the
/// demo's pool is up (so the demo's first connection check is left alone), until `stop`. Each
/// victim is a demo session caught inside a transaction that began 300–800 ms (chosen at
/// random each time) after the previous termination: the fault lands mid-call, and the demo
/// gets that long to make progress between faults. Its own session reconnects after a restart.
private func terminateDemoBackends(server: EphemeralPostgres, state: FaultInjection, logger: Logger) async {
    let session = FaultSession(server: server, logger: logger)
    defer { session.close() }
    // Waits (a condition, not a pause) until the demo has two sessions open.
    try? await waitUntil(timeout: .seconds(60), pollEvery: .milliseconds(50), "the demo's pool is up") {
        if state.isStopped { return true }
        guard let count = try? await session.scalar(
            "SELECT count(*)::int FROM pg_stat_activity WHERE application_name = 'pglock'", as: Int.self
        ) else { return false }
        return count >= 2
    }
    // The server's clock at the last termination (the server restarts keep it).
    var lastFault = (try? await session.scalar("SELECT clock_timestamp()", as: Date.self)) ?? Date()
    while !state.isStopped {
        let gapMilliseconds = Int32.random(in: 300...800)
        var victim: Int32?
        try? await waitUntil(timeout: .seconds(170), pollEvery: .milliseconds(20), "a demo transaction began \(gapMilliseconds) ms after the last fault") {
            if state.isStopped { return true }
            victim = try? await session.scalar("""
                SELECT coalesce((
                    SELECT pid FROM pg_stat_activity
                    WHERE application_name = 'pglock' AND pid <> pg_backend_pid()
                      AND xact_start >= \(lastFault)::timestamptz + \(gapMilliseconds) * interval '1 millisecond'
                    ORDER BY random() LIMIT 1
                ), 0)
                """, as: Int32.self)
            return (victim ?? 0) != 0
        }
        guard !state.isStopped, let pid = victim, pid != 0 else { continue }
        let terminated = try? await session.scalar("SELECT pg_terminate_backend(\(pid))", as: Bool.self)
        if terminated == true { state.terminated() }
        lastFault = (try? await session.scalar("SELECT clock_timestamp()", as: Date.self)) ?? lastFault
    }
}

/// The fault injector's own session: (re)connects on demand, so it survives a server restart.
private final class FaultSession: Sendable {
    private let server: EphemeralPostgres
    private let logger: Logger
    private let connection = Mutex<PostgresConnection?>(nil)

    init(server: EphemeralPostgres, logger: Logger) {
        self.server = server
        self.logger = logger
    }

    /// The first column of the first row; on an error the session is closed and the next call
    /// reconnects (the server is restarting, or this session was terminated).
    func scalar<T: PostgresDecodable>(_ query: PostgresQuery, as type: T.Type) async throws -> T {
        let current: PostgresConnection
        if let open = connection.withLock({ $0 }), !open.isClosed {
            current = open
        } else {
            var settings = try ConnectionSettings(url: server.url())
            settings.applicationName = "demo-faults"
            current = try await PostgresConnection.connect(configuration: try settings.makeConnectionConfiguration(), id: 1, logger: logger)
            let previous = connection.withLock { slot in defer { slot = current }; return slot }
            if let previous { Task { try? await previous.close() } }
        }
        do {
            let rows = try await current.query(query, logger: logger).collect()
            guard let row = rows.first else { throw TestFailure("no row for \(query.sql)") }
            return try row.decode(T.self)
        } catch {
            connection.withLock { if $0 === current { $0 = nil } }
            Task { try? await current.close() }
            throw error
        }
    }

    /// Closes the session.
    func close() {
        guard let open = connection.withLock({ $0.take() }) else { return }
        Task { try? await open.close() }
    }
}

/// What the fault injection shares between its tasks.
private final class FaultInjection: Sendable {
    private struct State {
        var stopped = false
        var terminations = 0
        var restarted = false
        var demo: (TerminationStatus, String, String)?
    }
    private let state = Mutex(State())

    func stop() { state.withLock { $0.stopped = true } }
    var isStopped: Bool { state.withLock { $0.stopped } }
    func terminated() { state.withLock { $0.terminations += 1 } }
    var terminationCount: Int { state.withLock { $0.terminations } }
    func restarted() { state.withLock { $0.restarted = true } }
    var didRestart: Bool { state.withLock { $0.restarted } }
    func finished(_ status: TerminationStatus, output: String, errors: String) { state.withLock { $0.demo = (status, output, errors) } }
    var demoResult: (TerminationStatus, String, String)? { state.withLock { $0.demo } }
}
