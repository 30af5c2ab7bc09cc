import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO

/// `pglock bench commit-outcome`: what ``RetryPolicy/resolveCommitOutcome`` costs. The same
/// transactions run through `withRetryingTransaction` with the default policy and with
/// ``RetryPolicy/resolvingCommitOutcome`` (one more statement before `COMMIT`: the transaction
/// id), in interleaved rounds (A B B A …) so that drift on a shared machine cancels out.
enum CommitOutcomeBench {
    struct Side: Codable {
        var policy: String
        /// Ops/s of each round, in the order they ran.
        var roundOpsPerSecond: [Double]
        var medianOpsPerSecond: Double
        /// The round closest to the median, for its latencies.
        var median: LatencyStats
    }

    struct Row: Codable {
        var workload: String
        var defaultPolicy, resolvingCommitOutcome: Side
        /// resolvingCommitOutcome / default, from the medians.
        var ratio: Double
    }

    /// The two transactions measured: a write (the counter row: BEGIN; INSERT … ON CONFLICT
    /// DO UPDATE … RETURNING; COMMIT) and the smallest lock transaction, which writes nothing
    /// (BEGIN; pg_advisory_xact_lock; COMMIT): the extra statement's worst case.
    enum Workload: String, CaseIterable {
        case counterRow = "counter-row"
        case lock
    }

    static func run(harness: BenchHarness, client: PostgresClient, rounds: Int, keys: Int, scopes: Int, progress: Progress) async throws -> [Row] {
        let counter = try GaplessCounter(table: "bench_commit_outcome_counter", strategy: .counterRow)
        try await counter.migrate(on: client, logger: harness.logger)
        var rows: [Row] = []
        for workload in Workload.allCases {
            var results: [Bool: [LatencyStats]] = [false: [], true: []]
            // A B B A A B …: each policy runs first as often as second.
            let order = (0..<rounds).flatMap { $0.isMultiple(of: 2) ? [false, true] : [true, false] }
            for resolving in order {
                let policy: RetryPolicy = resolving ? .resolvingCommitOutcome : .default
                progress.step("\(workload.rawValue), \(resolving ? "resolvingCommitOutcome" : "default policy"): \(harness.concurrency) workers, \(format(harness.warmup)) warm-up + \(format(harness.duration))")
                let logger = harness.logger
                let (stats, _) = try await harness.measure { connection, _, random in
                    switch workload {
                    case .counterRow:
                        let scope = "scope-\(Int.random(in: 1...scopes, using: &random))"
                        try await connection.withRetryingTransaction(retry: policy, logger: logger) { tx in
                            _ = try await counter.next(scope: scope, in: tx)
                        }
                    case .lock:
                        let key = Int64.random(in: 1...Int64(keys), using: &random)
                        try await connection.withRetryingTransaction(retry: policy, logger: logger) { tx in
                            try await tx.query("SELECT pg_advisory_xact_lock(\(key))")
                        }
                    }
                }
                progress.done(stats.summary)
                results[resolving]!.append(stats)
            }
            let base = side("default", results[false]!)
            let resolving = side("resolvingCommitOutcome", results[true]!)
            rows.append(Row(
                workload: workload.rawValue, defaultPolicy: base, resolvingCommitOutcome: resolving,
                ratio: resolving.medianOpsPerSecond / max(base.medianOpsPerSecond, 1)
            ))
        }
        return rows
    }

    static func side(_ policy: String, _ rounds: [LatencyStats]) -> Side {
        let sorted = rounds.sorted { $0.opsPerSecond < $1.opsPerSecond }
        let median = sorted[sorted.count / 2]
        return Side(policy: policy, roundOpsPerSecond: rounds.map(\.opsPerSecond), medianOpsPerSecond: median.opsPerSecond, median: median)
    }

    static func printReport(_ rows: [Row], concurrency: Int) {
        print("scenario commit-outcome, concurrency \(concurrency), dedicated connections, withRetryingTransaction")
        for row in rows {
            let rounds = { (side: Side) in side.roundOpsPerSecond.map { String(Int($0.rounded())) }.joined(separator: ", ") }
            print("  \(row.workload):")
            print("    default policy:         median \(Int(row.defaultPolicy.medianOpsPerSecond.rounded())) tx/s, p50 \(row.defaultPolicy.median.p50Micros) µs, p99 \(row.defaultPolicy.median.p99Micros) µs (rounds: \(rounds(row.defaultPolicy)))")
            print("    resolvingCommitOutcome: median \(Int(row.resolvingCommitOutcome.medianOpsPerSecond.rounded())) tx/s, p50 \(row.resolvingCommitOutcome.median.p50Micros) µs, p99 \(row.resolvingCommitOutcome.median.p99Micros) µs (rounds: \(rounds(row.resolvingCommitOutcome)))")
            print("    ratio resolving/default: \(String(format: "%.2f", row.ratio))×")
        }
    }
}
