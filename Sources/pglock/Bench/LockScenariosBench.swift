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
    /// (a pool lease, lock, empty body, unlock, release); the driver ceiling does the same two
    /// statements in plain PostgresNIO's `withConnection`.
    static func lockSession(harness: BenchHarness, client: PostgresClient, keys: Int, turns: BenchTurns, driverCeiling: Bool, pgbench: PgbenchRunner?) async throws -> Report {
        let (logger, round) = (harness.logger, driverCeiling ? harness.splitInto(turns.rounds) : harness)
        let comparison = try await turns.compare(
            ours: ("\(harness.concurrency) workers, withSessionAdvisoryLock(random key of \(keys)) { } through the pool", {
                try await round.measurePooled { random in
                    try await client.withSessionAdvisoryLock(.int64(Int64.random(in: 1...Int64(keys), using: &random)), heartbeat: nil, logger: logger) {}
                }
            }),
            ceiling: !driverCeiling ? nil : ("plain PostgresNIO in client.withConnection: pg_advisory_lock; pg_advisory_unlock, prepared", {
                try await round.measurePooled { random in
                    try await BenchCommand.rawPooledSessionLock(client, key: Int64.random(in: 1...Int64(keys), using: &random), logger: logger)
                }
            })
        )
        // The same work through a SessionLockPool: sessions kept open, no lease per lock.
        var configuration = SessionLockPool.Configuration(connection: harness.settings)
        configuration.connection.applicationName = "pglock-bench-lock-session"
        let sessions = configuration.connections
        let locksPool = try SessionLockPool(configuration: configuration, logger: logger)
        turns.progress.step("session lock pool: \(harness.concurrency) workers, SessionLockPool.withLock(random key of \(keys)) { } over \(sessions) server connections")
        let pooled = try await withRunningServices([locksPool], logger: logger) {
            try await harness.measurePooled { random in
                try await locksPool.withLock(.int64(Int64.random(in: 1...Int64(keys), using: &random))) {}
            }
        }
        turns.progress.done(pooled.stats.summary)
        let script = "\\set k random(1, :keys)\nSELECT pg_advisory_lock(:k);\nSELECT pg_advisory_unlock(:k);\n"
        var report = try await finish("lock-session", comparison: comparison, script: script, variables: ["keys": "\(keys)"], harness: harness, pgbench: pgbench, progress: turns.progress)
        report.head.sessionLockPool = pooled.stats
        report.head.sessionLockPoolCPUMicrosPerOperation = pooled.cpuMicrosPerOperation
        report.head.sessionLockPoolRatio = report.comparison.pgbench.map { pooled.stats.opsPerSecond / max($0.opsPerSecond, 1) }
        return report
    }

    /// The statement pgbench and the driver ceiling of `many-keys` lock their keys with.
    private static let manyKeysSQL = "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest($1::int8[]) AS k ORDER BY 1) AS sorted"

    /// BEGIN; ten random keys locked sorted, in one statement; COMMIT. The driver ceiling sends
    /// pgbench's three statements, prepared, as futures chained on the event loop.
    static func manyKeys(harness: BenchHarness, keys: Int, perTransaction: Int, turns: BenchTurns, driverCeiling: Bool, pgbench: PgbenchRunner?) async throws -> Report {
        let (logger, round) = (harness.logger, driverCeiling ? harness.splitInto(turns.rounds) : harness)
        @Sendable func randomKeys(using random: inout SystemRandomNumberGenerator) -> [Int64] {
            (0..<perTransaction).map { _ in Int64.random(in: 1...Int64(keys), using: &random) }
        }
        let comparison = try await turns.compare(
            ours: ("\(harness.concurrency) workers, withAdvisoryLocks(\(perTransaction) random keys of \(keys)) on dedicated connections", {
                try await round.measure { connection, _, random in
                    try await connection.withAdvisoryLocks(randomKeys(using: &random).map { LockRequest(.int64($0)) }, logger: logger) { _ in }
                }
            }),
            ceiling: !driverCeiling ? nil : ("plain PostgresNIO futures on the event loop: BEGIN; the keys locked sorted in one statement; COMMIT, prepared", {
                try await round.measureLoops(residentGrowth: false) { connection, _, span in
                    let begin = try await connection.prepare(query: "BEGIN").get()
                    let lock = try await connection.prepare(query: manyKeysSQL).get()
                    let commit = try await connection.prepare(query: "COMMIT").get()
                    return try await BenchCommand.chainOnEventLoop(connection.eventLoop, keys: keys, span: span) { _ in
                        var random = SystemRandomNumberGenerator()
                        let array = PostgresData(array: randomKeys(using: &random).map { PostgresData(int64: $0) }, elementType: .int8)
                        return begin.execute().flatMap { _ in lock.execute([array]) }.flatMap { _ in commit.execute() }.map { _ in }
                    }
                }
            })
        )
        var script = ""
        for index in 1...perTransaction { script += "\\set k\(index) random(1, :keys)\n" }
        let array = (1...perTransaction).map { ":k\($0)" }.joined(separator: ", ")
        script += "BEGIN;\n" + manyKeysSQL.replacingOccurrences(of: "$1::int8[]", with: "ARRAY[\(array)]::int8[]") + ";\nCOMMIT;\n"
        return try await finish("many-keys", comparison: comparison, script: script, variables: ["keys": "\(keys)"], harness: harness, pgbench: pgbench, progress: turns.progress)
    }

    private static func finish(
        _ scenario: String, comparison: BenchComparison, script: String, variables: [String: String],
        harness: BenchHarness, pgbench: PgbenchRunner?, progress: Progress
    ) async throws -> Report {
        let run = LockBenchRun(scenario: scenario, concurrency: harness.concurrency, peakMemoryMegabytes: peakMemoryMegabytes())
        var comparison = comparison
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
