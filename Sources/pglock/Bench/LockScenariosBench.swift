import Foundation
import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO

/// `pglock bench lock-session` and `pglock bench many-keys`: ours on dedicated connections
/// (or the pool, for session locks, as the API works) against pgbench running the same SQL.
enum LockScenariosBench {
    typealias Report = BenchReport<LockBenchRun>

    /// Session lock and unlock of a random key per operation, through `withSessionAdvisoryLock`
    /// (a pool lease, lock, empty body, unlock, release).
    static func lockSession(harness: BenchHarness, client: PostgresClient, keys: Int, pgbench: PgbenchRunner?, progress: Progress) async throws -> Report {
        let logger = harness.logger
        progress.step("ours: \(harness.concurrency) workers, withSessionAdvisoryLock(random key of \(keys)) { } through the pool")
        let (ours, cpu) = try await harness.measure { _, _, random in
            let key = LockKey.int64(Int64.random(in: 1...Int64(keys), using: &random))
            try await client.withSessionAdvisoryLock(key, heartbeat: nil, logger: logger) {}
        }
        progress.done(ours.summary)
        let script = "\\set k random(1, :keys)\nSELECT pg_advisory_lock(:k);\nSELECT pg_advisory_unlock(:k);\n"
        return try await finish("lock-session", ours: ours, cpu: cpu, script: script, variables: ["keys": "\(keys)"], harness: harness, pgbench: pgbench, progress: progress)
    }

    /// BEGIN; ten random keys locked sorted, in one statement; COMMIT.
    static func manyKeys(harness: BenchHarness, client: PostgresClient, keys: Int, perTransaction: Int, pgbench: PgbenchRunner?, progress: Progress) async throws -> Report {
        let logger = harness.logger
        progress.step("ours: \(harness.concurrency) workers, withAdvisoryLocks(\(perTransaction) random keys of \(keys)) on dedicated connections")
        let (ours, cpu) = try await harness.measure { connection, _, random in
            let requests = (0..<perTransaction).map { _ in LockRequest(.int64(Int64.random(in: 1...Int64(keys), using: &random))) }
            try await connection.withAdvisoryLocks(requests, logger: logger) { _ in }
        }
        progress.done(ours.summary)
        var script = ""
        for index in 1...perTransaction { script += "\\set k\(index) random(1, :keys)\n" }
        let array = (1...perTransaction).map { ":k\($0)" }.joined(separator: ", ")
        script += "BEGIN;\nSELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(ARRAY[\(array)]::int8[]) AS k ORDER BY 1) AS sorted;\nCOMMIT;\n"
        return try await finish("many-keys", ours: ours, cpu: cpu, script: script, variables: ["keys": "\(keys)"], harness: harness, pgbench: pgbench, progress: progress)
    }

    private static func finish(
        _ scenario: String, ours: LatencyStats, cpu: Double, script: String, variables: [String: String],
        harness: BenchHarness, pgbench: PgbenchRunner?, progress: Progress
    ) async throws -> Report {
        let run = LockBenchRun(scenario: scenario, concurrency: harness.concurrency, peakMemoryMegabytes: peakMemoryMegabytes())
        var comparison = BenchComparison(ours: ours, oursCPUMicrosPerOperation: cpu)
        comparison.pgbench = try await pgbench?.measure(
            "pgbench: the same SQL, \(harness.concurrency) clients, prepared statements",
            script: script, harness: harness, variables: variables, progress: progress
        )
        return Report(head: run, comparison: comparison)
    }
}

/// The most memory this process has used, in MiB (`ru_maxrss`).
func peakMemoryMegabytes() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_maxrss) / 1024
}
