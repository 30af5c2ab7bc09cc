import Foundation
import PostgresLocksTestSupport
import Subprocess
import Testing
#if canImport(System)
import System
#else
import SystemPackage
#endif
import PglockHarness

/// The fault suite: the library under injected faults (lock sections, gapless counters,
/// exactly-once ingestion, queue work, cancellation storms), its promises checked in the database
/// afterwards. Serialized: each scenario loads the machine on its own. The workload is
/// `pglock soak`'s (Sources/pglock/Soak), here run for seconds instead of minutes.
///
/// Faults covered elsewhere, not repeated here:
/// - a queue worker process killed with SIGKILL: its job is reclaimed after the lease and
///   completed once, the stale lease refused (EphemeralPostgresTests/QueueFaultTests);
/// - queue workers across a server restart: no job lost (EphemeralPostgresTests/QueueFaultTests);
/// - a session lock's backend terminated: the body is cancelled, `lockLost`
///   (PostgresLocksTests/AdvisoryLockTests.lostSessionLockCancelsTheBodyAndThrowsLockLost);
/// - a leader's backend terminated: a follower takes over with a higher term (LeaderElectionTests).
@Suite("Faults: backends terminated, server restarted, cancellation storms", .serialized)
struct FaultTests {
    // Each scenario runs `pglock soak` on a throwaway server of its own, in a niced process
    // (server included), once the rest of the test suite is done with the shared server, so
    // that its timing-sensitive tests are not disturbed.

    @Test func mutualExclusionHoldsAndNoUpdateIsLostWhileBackendsAreTerminated() async throws {
        try await afterTheOtherTests()
        let report = try await runSoak("advisory-lock critical sections, backends terminated", [
            "--duration", "8s", "--terminate-every", "100ms", "--restart-every", "never",
            "--work", "lock=6", "--pause", "10ms",
        ])
        expectClean(report)
        #expect(report.tallies.terminations >= 20)
        #expect(report.tallies.lockSections >= 50)
    }

    @Test func everyCounterStrategyStaysGaplessAndUniqueWhileBackendsAreTerminated() async throws {
        try await afterTheOtherTests()
        let report = try await runSoak("gapless counters (3 strategies), backends terminated", [
            "--duration", "8s", "--terminate-every", "100ms", "--restart-every", "never",
            "--work", "counter=6", "--pause", "10ms",
        ])
        expectClean(report)
        #expect(report.tallies.terminations >= 20)
        #expect(report.tallies.numbers >= 100)
    }

    @Test func everyJobIsCompletedWithItsEffectExactlyOnceWhileBackendsAreTerminated() async throws {
        try await afterTheOtherTests()
        let report = try await runSoak("queue work, backends terminated", [
            "--duration", "8s", "--terminate-every", "100ms", "--restart-every", "never",
            "--work", "queue=2",
        ])
        expectClean(report)
        #expect(report.tallies.terminations >= 20)
        #expect(report.tallies.jobsEnqueued >= 100)
    }

    @Test func eachIngestedKeysHandlerRunsOnceWhileBackendsAreTerminated() async throws {
        // Batches of 24 keys, about 30% of them repeats of recent keys (often still in another
        // worker's open transaction), split into transactions of 8 keys; half the workers on the
        // pool, half on a dedicated connection; a batch a fault broke is sent again until accepted.
        try await afterTheOtherTests()
        let report = try await runSoak("exactly-once ingestion, backends terminated", [
            "--duration", "8s", "--terminate-every", "100ms", "--restart-every", "never",
            "--work", "ingest=4", "--pause", "10ms",
        ])
        expectClean(report)
        #expect(report.tallies.terminations >= 20)
        #expect(report.tallies.ingestedKeys >= 100)
    }

    @Test func nothingCommittedIsLostAndNothingIsDoneTwiceAcrossServerRestarts() async throws {
        // A durable server, stopped with -m immediate (a crash, then recovery on the same data).
        try await afterTheOtherTests()
        let report = try await runSoak("locks, counters and ingestion, server restarted", [
            "--duration", "10s", "--restart-every", "2500ms", "--terminate-every", "300ms",
            "--work", "lock=4,counter=4,ingest=2", "--pause", "10ms",
        ])
        expectClean(report)
        #expect(report.tallies.restarts >= 1)
        #expect(report.tallies.lockSections >= 20 && report.tallies.numbers >= 20)
        #expect(report.tallies.ingestedKeys >= 20)
    }

    @Test func cancellationAndTimeoutStormsLeakNoLockAndHangNoCall() async throws {
        // Waves of 150 lock waits on 4 contended keys: `.forever` waits cancelled at a random
        // moment, `.timeout(5–150 ms)` waits (some cancelled too), try-locks; each call timed
        // against its deadline (+ 5 s), every lock checked released at the end.
        try await afterTheOtherTests()
        let report = try await runSoak("cancellation and timeout storm", [
            "--duration", "6s", "--terminate-every", "never", "--restart-every", "never",
            "--work", "storm=150", "--storm-pause", "200ms",
        ])
        expectClean(report)
        #expect(report.tallies.stormCalls >= 300)  // two waves of 150 at least
        #expect(report.tallies.stormCancelled >= 100)
        #expect(report.tallies.stormTimedOut >= 20)
        #expect(report.tallies.hungCalls == 0)
        #expect(report.tallies.strayCancels == 0)
    }

    @Test func aShortSoakAgainstADatabasePrintsTalliesAndPasses() async throws {
        try await afterTheOtherTests()
        try await TestDatabase.withDatabase(maximumConnections: 2) { db in
            let result = try await withinTimeLimit(.seconds(120), "pglock soak") {
                try await Subprocess.run(
                    .path(FilePath("/usr/bin/nice")),
                    arguments: [
                        "-n", "19", try pglockExecutable(), "soak", "--duration", "3s", "--report-every", "1s", "--terminate-every", "300ms",
                        "--work", "lock=2,counter=2,ingest=2,queue=1,storm=10", "--database-url", db.settings.redactedURL,
                    ],
                    input: .none, output: .string(limit: 1 << 20), error: .string(limit: 1 << 20)
                )
            }
            let output = result.standardOutput, progress = result.standardError
            #expect(result.terminationStatus.isSuccess, "\(output)\n\(progress.suffix(3000))")
            #expect(output.contains("verdict: PASS"), "\(output)")
            #expect(progress.contains("terminated"), "\(progress.suffix(3000))")
            // The run dropped its schemas.
            #expect(try await db.scalar("SELECT count(*)::int FROM pg_namespace WHERE nspname LIKE 'pglocks_soak_%'", as: Int.self) == 0)
        }
    }
}
