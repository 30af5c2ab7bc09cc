import ArgumentParser
import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO
import Synchronization

/// `pglock bench counter`: each gapless-counter strategy, ours against pgbench running the
/// same statements.
enum CounterBench {
    /// The strategy a row measures.
    struct Strategy: Encodable, Sendable {
        var strategy: String
    }

    typealias Row = BenchReport<Strategy>

    /// Per-worker prepared statements of the driver-ceiling side.
    final class PreparedPerWorker: Sendable {
        private let statements = Mutex<[Int: [PreparedQuery]]>([:])

        func get(_ worker: Int, prepare: () async throws -> [PreparedQuery]) async throws -> [PreparedQuery] {
            if let existing = statements.withLock({ $0[worker] }) { return existing }
            let made = try await prepare()
            statements.withLock { $0[worker] = made }
            return made
        }
    }

    /// What the driver-ceiling side runs for the counter row: the library's statement text,
    /// prepared by plain PostgresNIO.
    static func counterRowSQL(_ counter: GaplessCounter) -> String {
        counter.statementTexts(scopeSQL: "$1")[0]
    }

    /// The pgbench script doing what `GaplessCounter.next` sends for `strategy`, in a
    /// transaction: the library's own statement texts, the scope picked by pgbench.
    static func pgbenchScript(_ counter: GaplessCounter) -> String {
        let statements = counter.statementTexts(scopeSQL: "'scope-' || CAST(:s AS text)")
        return "\\set s random(1, :scopes)\nBEGIN;\n" + statements.map { $0 + ";\n" }.joined() + "COMMIT;\n"
    }

    static func run(strategies: [GaplessCounter.Strategy], scopes: Int, setup: BenchSetup, driverCeiling: Bool) async throws -> [Row] {
        let (harness, client, progress, logger) = (setup.harness, setup.client, setup.progress, setup.harness.logger)
        let pgbench = setup.pgbench()
        var rows: [Row] = []
        for strategy in strategies {
            let counter = try GaplessCounter(table: "bench_counter_\(strategy.rawValue.replacingOccurrences(of: "-", with: "_"))", strategy: strategy)
            try await counter.migrate(on: client, logger: logger)
            let truncate = { _ = try await client.withConnection { try await $0.query("TRUNCATE \(identifier: counter.table)", logger: logger) } }
            try await truncate()
            progress.step("ours: \(strategy.rawValue), \(harness.concurrency) workers over \(scopes) scopes, BEGIN; next number; COMMIT")
            let (ours, cpu) = try await harness.measure { connection, _, random in
                let scope = "scope-\(Int.random(in: 1...scopes, using: &random))"
                try await connection.withCheckedTransaction(logger: logger) { tx in
                    _ = try await counter.next(scope: scope, in: tx)
                }
            }
            progress.done(ours.summary)
            var comparison = BenchComparison(ours: ours, oursCPUMicrosPerOperation: cpu)
            if driverCeiling && strategy == .counterRow {
                try await truncate()
                progress.step("driver ceiling: plain PostgresNIO, the same three statements prepared, one await per transaction")
                let sql = counterRowSQL(counter)
                let prepared = PreparedPerWorker()
                let (ceiling, ceilingCPU) = try await harness.measure { connection, worker, random in
                    let statements = try await prepared.get(worker) {
                        [try await connection.prepare(query: "BEGIN").get(), try await connection.prepare(query: sql).get(), try await connection.prepare(query: "COMMIT").get()]
                    }
                    let scope = PostgresData(string: "scope-\(Int.random(in: 1...scopes, using: &random))")
                    _ = try await statements[0].execute().flatMap { _ in statements[1].execute([scope]) }.flatMap { _ in statements[2].execute() }.get()
                }
                progress.done(ceiling.summary)
                comparison.driverCeiling = ceiling
                comparison.driverCeilingCPUMicrosPerOperation = ceilingCPU
            }
            if let pgbench {
                try await truncate()
                comparison.pgbench = try await pgbench.measure(
                    "pgbench: the same statements", script: pgbenchScript(counter), harness: harness, variables: ["scopes": "\(scopes)"], progress: progress
                )
            }
            rows.append(Row(head: Strategy(strategy: strategy.rawValue), comparison: comparison))
        }
        return rows
    }
}

extension GaplessCounter.Strategy: ExpressibleByArgument {}
