import Foundation
import Histogram
import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO
import Synchronization

/// `pglock bench hold`: many session locks held at once by one process through a
/// ``SessionLockPool``: how fast they are taken and released, and how many server connections
/// carry them.
enum HoldBench {
    struct Report: Codable, Sendable {
        var holds, workers: Int
        /// The pool's carrying sessions and the most waiting sessions it may open.
        var poolConnections, waitingConnections: Int
        /// Per lock, from the call to its body starting.
        var acquire: LatencyStats
        var acquirePerSecond, releasePerSecond: Double
        /// The pool's sessions in `pg_stat_activity` while every lock was held, and the granted
        /// advisory locks of this database in `pg_locks` at that moment.
        var serverConnections, locksInPgLocks: Int
        var allReleased: Bool

        func printText() {
            print("hold: \(holds) session locks by one process, \(workers) workers, pool of \(poolConnections) carrying + up to \(waitingConnections) waiting sessions")
            print(String(format: "  acquire  %.0f locks/s (%@)", acquirePerSecond, acquire.summary))
            print(String(format: "  release  %.0f locks/s", releasePerSecond))
            print("  server connections carrying them: \(serverConnections) (pg_stat_activity); locks in pg_locks: \(locksInPgLocks); all released: \(allReleased)")
        }
    }

    static func run(setup: BenchSetup, holds: Int, connections: Int, waitingConnections: Int) async throws -> Report {
        let (harness, progress, checker) = (setup.harness, setup.progress, setup.client)
        let workers = harness.concurrency
        let logger = harness.logger
        var configuration = SessionLockPool.Configuration(connection: harness.settings)
        configuration.connections = connections
        configuration.waitingConnections = waitingConnections
        configuration.connection.applicationName = "pglock-bench-hold"
        let pool = try SessionLockPool(configuration: configuration, logger: logger)
        // Keys of their own for this run, so that other users of the server are not in the way.
        let base = Int64.random(in: (1 << 40)...(1 << 50))
        let tally = Tally()

        return try await withRunningServices([pool], logger: logger) {
            do {
                progress.step("taking \(holds) session locks with \(workers) workers (each nests its share, then waits)")
                let started = ContinuousClock.now
                var report = try await withThrowingTaskGroup(of: Void.self) { group -> Report in
                    for worker in 0..<workers {
                        let share = Array(stride(from: worker, to: holds, by: workers))
                        group.addTask {
                            @Sendable func hold(_ index: Int) async throws {
                                guard index < share.count else { return try await suspendUntilCancelled() }
                                let asked = ContinuousClock.now
                                try await pool.withLock(.int64(base + Int64(share[index])), wait: .immediately) {
                                    let micros = seconds(ContinuousClock.now - asked) * 1e6
                                    tally.latencies.withLock { _ = $0.record(UInt64(max(1, micros.rounded()))) }
                                    tally.held.add(1, ordering: .relaxed)
                                    try await hold(index + 1)
                                }
                            }
                            do { try await hold(0) } catch is CancellationError {}
                        }
                    }
                    while tally.held.load(ordering: .relaxed) < holds {
                        try await Task.sleep(for: .milliseconds(2))
                    }
                    let acquireSeconds = seconds(ContinuousClock.now - started)
                    let sessions = try await checker.checkedQuery(
                        "SELECT count(*)::int FROM pg_stat_activity WHERE application_name = 'pglock-bench-hold' AND datname = current_database()",
                        logger: logger
                    ).rows[0].decode(Int.self)
                    let locks = try await checker.checkedQuery(
                        "SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                        logger: logger
                    ).rows[0].decode(Int.self)
                    progress.done("\(holds) held over \(sessions) server connections in \(String(format: "%.2f", acquireSeconds)) s")
                    progress.step("releasing them")
                    let releasing = ContinuousClock.now
                    group.cancelAll()
                    try await group.waitForAll()
                    let releaseSeconds = seconds(ContinuousClock.now - releasing)
                    let stats = tally.latencies.withLock { LatencyStats(histogram: $0, seconds: acquireSeconds) }
                    return Report(
                        holds: holds, workers: workers, poolConnections: connections, waitingConnections: waitingConnections,
                        acquire: stats, acquirePerSecond: Double(holds) / acquireSeconds, releasePerSecond: Double(holds) / releaseSeconds,
                        serverConnections: sessions, locksInPgLocks: locks, allReleased: false
                    )
                }
                report.allReleased = pool.heldCount == 0
                progress.done(String(format: "released in %.2f s", Double(holds) / report.releasePerSecond))
                return report
            }
        }
    }

    /// The locks held so far and how long each took, from every worker.
    private final class Tally: Sendable {
        let held = Atomic<Int>(0)
        let latencies = Mutex(LatencyStats.emptyHistogram())
    }
}
