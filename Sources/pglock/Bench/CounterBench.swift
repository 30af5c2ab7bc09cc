import ArgumentParser
import Logging
import PostgresLocks
import PostgresNIO

/// `pglock bench counter`: each gapless-counter strategy, ours against pgbench running the
/// same statements.
enum CounterBench {
    struct Row: Codable {
        var strategy: String
        var ours: LatencyStats
        var oursCPUMicrosPerOperation: Double
        var pgbench: LatencyStats?
        var ratio: Double?
    }

    /// The pgbench script doing what `GaplessCounter.next` sends for `strategy`, in a transaction.
    static func pgbenchScript(_ counter: GaplessCounter) -> String {
        let table = counter.table.quoted, scope = counter.scopeColumn.quoted, number = counter.numberColumn.quoted
        let header = "\\set s random(1, :scopes)\nBEGIN;\n"
        switch counter.strategy {
        case .counterRow:
            return header + "INSERT INTO \(table) AS c (\(scope), \(number)) VALUES ('scope-' || CAST(:s AS text), 1) ON CONFLICT (\(scope)) DO UPDATE SET \(number) = c.\(number) + 1 RETURNING \(number);\nCOMMIT;\n"
        case .advisoryLock:
            // The same key as LockKey.hashed("<table>:scope-N"): the first 8 bytes of MD5, signed.
            // (chr(58) is ':', which pgbench would read as the start of a variable.)
            return header + "SELECT pg_advisory_xact_lock(('x' || substr(md5('\(counter.table.unquotedText)' || chr(58) || 'scope-' || CAST(:s AS text)), 1, 16))::bit(64)::bigint);\n"
                + "INSERT INTO \(table) (\(scope), \(number)) SELECT 'scope-' || CAST(:s AS text), COALESCE(MAX(\(number)), 0) + 1 FROM \(table) WHERE \(scope) = 'scope-' || CAST(:s AS text) RETURNING \(number);\nCOMMIT;\n"
        case .uniqueIndexRetry:
            return header + "INSERT INTO \(table) (\(scope), \(number)) SELECT 'scope-' || CAST(:s AS text), COALESCE(MAX(\(number)), 0) + 1 FROM \(table) WHERE \(scope) = 'scope-' || CAST(:s AS text) ON CONFLICT DO NOTHING RETURNING \(number);\nCOMMIT;\n"
        }
    }

    static func run(
        strategies: [GaplessCounter.Strategy],
        scopes: Int,
        harness: BenchHarness,
        client: PostgresClient,
        pgbench: PgbenchRunner?,
        progress: Progress
    ) async throws -> [Row] {
        var rows: [Row] = []
        for strategy in strategies {
            let counter = try GaplessCounter(table: "bench_counter_\(strategy.rawValue.replacingOccurrences(of: "-", with: "_"))", strategy: strategy)
            try await counter.createTable(on: client, logger: harness.logger)
            try await client.withConnection { try await $0.query("TRUNCATE \(identifier: counter.table)", logger: harness.logger) }
            progress.step("ours: \(strategy.rawValue), \(harness.concurrency) workers over \(scopes) scopes, BEGIN; next number; COMMIT")
            let logger = harness.logger
            let (ours, cpu) = try await harness.measure { connection, _, random in
                let scope = "scope-\(Int.random(in: 1...scopes, using: &random))"
                try await connection.withCheckedTransaction(logger: logger) { tx in
                    _ = try await counter.next(scope: scope, in: tx)
                }
            }
            progress.done(ours.summary)
            var row = Row(strategy: strategy.rawValue, ours: ours, oursCPUMicrosPerOperation: cpu)
            if let pgbench {
                try await client.withConnection { try await $0.query("TRUNCATE \(identifier: counter.table)", logger: harness.logger) }
                progress.step("pgbench: the same statements")
                let stats = try await pgbench.run(
                    script: pgbenchScript(counter), clients: harness.concurrency, threads: min(harness.concurrency, 2),
                    duration: max(1, Int(harness.duration.components.seconds)), variables: ["scopes": "\(scopes)"]
                )
                progress.done(stats.summary)
                row.pgbench = stats
                row.ratio = ours.opsPerSecond / max(stats.opsPerSecond, 1)
            }
            rows.append(row)
        }
        return rows
    }
}

extension GaplessCounter.Strategy: ExpressibleByArgument {}
