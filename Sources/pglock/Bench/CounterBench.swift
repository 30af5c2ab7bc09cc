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

    static func run(strategies: [GaplessCounter.Strategy], scopes: Int, rounds: Int, setup: BenchSetup, driverCeiling: Bool) async throws -> [Row] {
        let (harness, client, progress, logger) = (setup.harness, setup.client, setup.progress, setup.harness.logger)
        let pgbench = setup.pgbench()
        var rows: [Row] = []
        for strategy in strategies {
            let counter = try GaplessCounter(table: "bench_counter_\(strategy.rawValue.replacingOccurrences(of: "-", with: "_"))", strategy: strategy)
            try await counter.migrate(on: client, logger: logger)
            let truncate = { _ = try await client.withConnection { try await $0.query("TRUNCATE \(identifier: counter.table)", logger: logger) } }
            try await truncate()
            let sql = counterRowSQL(counter)
            let withCeiling = driverCeiling && strategy == .counterRow
            let round = withCeiling ? harness.splitInto(rounds) : harness
            var comparison = try await BenchTurns(rounds: rounds, progress: progress).compare(
                ours: ("\(strategy.rawValue), \(harness.concurrency) workers over \(scopes) scopes, withNextNumber (BEGIN; next number; COMMIT)", {
                    try await truncate()
                    return try await round.measure { connection, _, random in
                        let scope = "scope-\(Int.random(in: 1...scopes, using: &random))"
                        try await counter.withNextNumber(scope: scope, on: connection, logger: logger) { _, _ in }
                    }
                }),
                ceiling: !withCeiling ? nil : ("plain PostgresNIO, the same three statements prepared, one await per transaction", {
                    try await truncate()
                    // Each round opens its own connections: statements prepared on the last
                    // round's (now closed) ones would never answer.
                    let prepared = PreparedPerWorker()
                    return try await round.measure { connection, worker, random in
                        let statements = try await prepared.get(worker) {
                            [try await connection.prepare(query: "BEGIN").get(), try await connection.prepare(query: sql).get(), try await connection.prepare(query: "COMMIT").get()]
                        }
                        let scope = PostgresData(string: "scope-\(Int.random(in: 1...scopes, using: &random))")
                        _ = try await statements[0].execute().flatMap { _ in statements[1].execute([scope]) }.flatMap { _ in statements[2].execute() }.get()
                    }
                })
            )
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
