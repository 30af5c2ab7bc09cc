import ArgumentParser
import Foundation
import Histogram
import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO
import Synchronization

/// `pglock bench ingest`: producers send batches of UUID-keyed events with duplicates through
/// ``ExactlyOnceIngestion``; pgbench runs the same insert (server-generated keys) for comparison.
struct IngestBench {
    /// How many events a batch has: a fixed number or a uniform range.
    struct BatchSize: Codable, Sendable, CustomStringConvertible {
        var lower: Int
        var upper: Int

        /// "100" or "100-1000".
        init(parsing text: String) throws {
            let parts = text.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), let lower = Int(parts[0]), let upper = Int(parts.last!), 1 <= lower, lower <= upper, upper <= 100_000 else {
                throw ValidationError("--batch-size must be a number or a range such as 100-1000, between 1 and 100000")
            }
            self.lower = lower
            self.upper = upper
        }

        var mean: Double { Double(lower + upper) / 2 }
        var description: String { lower == upper ? "\(lower)" : "\(lower)-\(upper)" }
    }

    struct Report: Codable {
        var scenario = "ingest"
        var producers: Int
        var batchSize: String
        var duplicateShare: Double
        var executor, loadAverageBefore: String
        /// Per batch: operations are batches.
        var ours: LatencyStats
        var oursEventsPerSecond, oursNewShare, oursCPUMicrosPerEvent: Double
        /// Rows in the table afterwards, and events the handler saw as new: equal when exactly
        /// once holds.
        var storedRows, handledEvents: Int64
        var exactlyOnceHolds: Bool
        var pgbench: LatencyStats?
        var pgbenchEventsPerSecond, ratio: Double?
        var targetMet: Bool
    }

    var batchSize: BatchSize
    var duplicateShare = 0.2
    /// Duplicates are drawn from the most recent keys issued by any producer, so some of them
    /// are still in flight in another producer's open transaction.
    var recentWindow: Int64 = 10_000

    static let table = "pglock_bench_ingest"
    static let pgbenchTable = "pglock_bench_ingest_pgbench"
    static let pgbenchSequence = "pglock_bench_ingest_seq"

    /// The UUID for key number `n`: two rounds of splitmix64, so keys land all over the index
    /// (as real UUIDs do); the same `n` always gives the same key, which is how duplicates are made.
    static func key(_ n: Int64) -> UUID {
        func mix(_ value: UInt64) -> UInt64 {
            var z = value &+ 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let a = mix(UInt64(bitPattern: n)), b = mix(a ^ 0x5EED)
        return withUnsafeBytes(of: (a.bigEndian, b.bigEndian)) { bytes in
            UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                        bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
        }
    }

    /// Runs the bench: one producer per worker of the setup's harness, each on its dedicated connection.
    func run(setup: BenchSetup) async throws -> Report {
        let (client, harness, progress, logger) = (setup.client, setup.harness, setup.progress, setup.harness.logger)
        let (producers, warmup, duration) = (harness.concurrency, harness.warmup, harness.duration)
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
        let ingestion = try ExactlyOnceIngestion<UUID>(table: QualifiedName(Self.table))
        try await client.withCheckedTransaction(logger: logger) { tx in
            try await tx.query("DROP TABLE IF EXISTS \(identifier: ingestion.table)")
        }
        try await ingestion.migrate(on: client, logger: logger)

        progress.step("ours: \(producers) producers, batches of \(batchSize) UUID-keyed events, \(Int(duplicateShare * 100))% duplicates (of the last \(recentWindow) keys of any producer), ExactlyOnceIngestion on a dedicated connection each, \(format(warmup)) warm-up + \(format(duration))")
        let cpuBefore = processCPUMicros()
        let totals = try await runProducers(ingestion: ingestion, harness: harness)
        let cpu = Double(processCPUMicros() - cpuBefore)
        let measuredSeconds = seconds(duration)
        let ours = LatencyStats(histogram: totals.histogram, seconds: measuredSeconds)
        let eventsPerSecond = Double(totals.measuredEvents) / measuredSeconds
        let stored = try await client.withCheckedTransaction(logger: logger) { tx in
            try await tx.query("SELECT count(*)::int8 FROM \(identifier: ingestion.table)").rows[0].decode(Int64.self)
        }
        let exactlyOnce = stored == totals.handledEvents
        progress.done("\(Int(eventsPerSecond.rounded())) events/s; per batch \(ours.summary); \(stored) rows stored, handler saw \(totals.handledEvents) new events (\(exactlyOnce ? "equal" : "DIFFERENT"))")

        var pgbench: LatencyStats?
        var pgbenchEvents: Double?
        if let runner = setup.pgbench() {
            progress.step("pgbench: the same transaction (BEGIN; INSERT … SELECT sorted keys … ON CONFLICT DO NOTHING RETURNING key, aggregated; COMMIT), keys made on the server, \(producers) clients")
            try await client.withCheckedTransaction(logger: logger) { tx in
                try await tx.query("DROP TABLE IF EXISTS \(unescaped: Self.pgbenchTable)")
                try await tx.query("DROP SEQUENCE IF EXISTS \(unescaped: Self.pgbenchSequence)")
                try await tx.query("CREATE TABLE \(unescaped: Self.pgbenchTable) (key uuid PRIMARY KEY, ingested_at timestamptz NOT NULL DEFAULT now())")
                try await tx.query("CREATE SEQUENCE \(unescaped: Self.pgbenchSequence)")
            }
            let stats = try await runner.run(script: pgbenchScript(), clients: producers, duration: duration, variables: [:])
            pgbench = stats
            pgbenchEvents = stats.opsPerSecond * batchSize.mean
            progress.done("\(Int(pgbenchEvents!.rounded())) events/s (batches/s × mean batch \(batchSize.mean)); per batch \(stats.summary)")
        }
        return Report(
            producers: producers, batchSize: batchSize.description, duplicateShare: duplicateShare, executor: harness.executor.rawValue,
            loadAverageBefore: load, ours: ours, oursEventsPerSecond: eventsPerSecond,
            oursNewShare: totals.measuredEvents > 0 ? Double(totals.measuredNew) / Double(totals.measuredEvents) : 0,
            oursCPUMicrosPerEvent: cpu / Double(max(totals.allEvents, 1)),
            storedRows: stored, handledEvents: totals.handledEvents, exactlyOnceHolds: exactlyOnce,
            pgbench: pgbench, pgbenchEventsPerSecond: pgbenchEvents,
            ratio: pgbenchEvents.map { eventsPerSecond / max($0, 1) },
            targetMet: eventsPerSecond >= 100_000 && ours.p99Micros < 10_000
        )
    }

    /// The pgbench transaction: the same statement shape, with keys generated on the server the
    /// same way (a new key number from a sequence, or with probability `duplicateShare` one of
    /// the last `recentWindow` numbers), hashed to a uuid, deduplicated and sorted.
    func pgbenchScript() -> String {
        let size = batchSize.lower == batchSize.upper ? "\\set n \(batchSize.lower)" : "\\set n random(\(batchSize.lower), \(batchSize.upper))"
        return """
            \(size)
            BEGIN;
            WITH inserted AS (INSERT INTO \(Self.pgbenchTable) (key) SELECT DISTINCT k FROM (SELECT md5((CASE WHEN random() < \(duplicateShare) THEN greatest(1, l.v - (random() * \(recentWindow))::int8) ELSE nextval('\(Self.pgbenchSequence)') END)::text)::uuid AS k FROM generate_series(1, :n), (SELECT COALESCE(pg_sequence_last_value('\(Self.pgbenchSequence)'), 1) AS v) l) s ORDER BY k ON CONFLICT (key) DO NOTHING RETURNING key) SELECT COALESCE(array_agg(key), '{}') FROM inserted;
            COMMIT;

            """
    }

    struct Totals: Sendable {
        var histogram = LatencyStats.emptyHistogram()
        var measuredEvents: Int64 = 0
        var measuredNew: Int64 = 0
        var allEvents: Int64 = 0
        var handledEvents: Int64 = 0
    }

    private func runProducers(ingestion: ExactlyOnceIngestion<UUID>, harness: BenchHarness) async throws -> Totals {
        let issued = KeyCounter()
        let batchSize = self.batchSize, duplicateShare = self.duplicateShare, recentWindow = self.recentWindow
        let logger = harness.logger
        let (results, _) = try await harness.onWorkers { connection, _, span in
            var totals = Totals()
            // A fast generator: SystemRandomNumberGenerator costs a getrandom call per number.
            var generator = BenchRandom(seed: UInt64.random(in: 0...UInt64.max))
            var keys: [UUID] = []
            totals.histogram = try await span.loop { measured in
                let count = Int.random(in: batchSize.lower...batchSize.upper, using: &generator)
                keys.removeAll(keepingCapacity: true)
                for _ in 0..<count {
                    let last = issued.value.load(ordering: .relaxed)
                    if last > 0 && Double.random(in: 0..<1, using: &generator) < duplicateShare {
                        keys.append(Self.key(Int64.random(in: max(1, last - recentWindow)...last, using: &generator)))
                    } else {
                        keys.append(Self.key(issued.value.add(1, ordering: .relaxed).newValue))
                    }
                }
                var handled = 0
                let report = try await ingestion.ingest(keys: keys, on: connection, logger: logger) { _, new in
                    handled += new.count
                }
                totals.allEvents += Int64(count)
                totals.handledEvents += Int64(handled)
                if measured {
                    totals.measuredEvents += Int64(count)
                    totals.measuredNew += Int64(report.newEventCount)
                }
            }
            return totals
        }
        var total = Totals()
        for partial in results {
            total.histogram.add(partial.histogram)
            total.measuredEvents += partial.measuredEvents
            total.measuredNew += partial.measuredNew
            total.allEvents += partial.allEvents
            total.handledEvents += partial.handledEvents
        }
        return total
    }
}

/// SplitMix64: fast, and good enough to pick batch sizes and duplicates.
struct BenchRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The last key number issued, shared by the producers.
final class KeyCounter: Sendable {
    let value = Atomic<Int64>(0)
}

extension BenchCommand {
    /// `pglock bench ingest`.
    func runIngestBench() async throws {
        let bench = IngestBench(batchSize: try IngestBench.BatchSize(parsing: ingest.batchSize))
        let report = try await withSetup { setup in try await bench.run(setup: setup) }
        try show(report) { report in
            func events(_ value: Double) -> String { "\(Int(value.rounded())) events/s" }
            print("scenario ingest: \(report.producers) producers, batches of \(report.batchSize) events, \(Int(report.duplicateShare * 100))% duplicates, executor \(report.executor), load average before \(report.loadAverageBefore)")
            print("  ours:    \(events(report.oursEventsPerSecond)) (\(Int((report.oursNewShare * 100).rounded()))% new); per batch p50 \(report.ours.p50Micros) µs, p90 \(report.ours.p90Micros) µs, p99 \(report.ours.p99Micros) µs, p99.9 \(report.ours.p999Micros) µs; \(Int(report.ours.opsPerSecond.rounded())) batches/s; client CPU \(String(format: "%.2f", report.oursCPUMicrosPerEvent)) µs/event")
            print("  exactly once: \(report.storedRows) rows stored, handler received \(report.handledEvents) new events: \(report.exactlyOnceHolds ? "equal" : "DIFFERENT")")
            if let pgbench = report.pgbench, let pgbenchEvents = report.pgbenchEventsPerSecond {
                print("  pgbench: \(events(pgbenchEvents)); per batch p50 \(pgbench.p50Micros) µs, p90 \(pgbench.p90Micros) µs, p99 \(pgbench.p99Micros) µs, p99.9 \(pgbench.p999Micros) µs; \(Int(pgbench.opsPerSecond.rounded())) batches/s")
            }
            if let ratio = report.ratio { print("  ratio ours/pgbench: \(String(format: "%.2f", ratio))×") }
            print("  target (≥ 100000 events/s, p99 batch < 10 ms): \(report.targetMet ? "met" : "not met")")
            if !report.exactlyOnceHolds { throw ExitCode(1) }
        }
    }
}
