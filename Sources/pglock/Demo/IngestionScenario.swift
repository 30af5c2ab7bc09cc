import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO

/// Several producers send batches of keyed events, a share of them duplicates of what other
/// producers send at the same moment. ``ExactlyOnceIngestion`` stores each key once, and the
/// handler (an insert into a side table, in the same transaction) runs once per distinct key.
struct IngestionScenario: DemoScenario {
    var name: String { "exactly-once ingestion" }
    var producers = 8, batchesPerProducer = 25, batchSize = 400
    /// The share of each batch taken from keys other producers send in the same round.
    var duplicateShare = 0.3

    func run(context: DemoContext) async throws -> [ScenarioOutcome] {
        let logger = context.logger
        let ingestion = try ExactlyOnceIngestion<String>(table: QualifiedName("pglock_demo_ingested"))
        let sideTable = try QualifiedName("pglock_demo_ingest_effects")
        return try await context.withScratchTables([ingestion.table, sideTable]) { tx in
            try await tx.query("CREATE TABLE \(identifier: sideTable) (key text NOT NULL, producer int NOT NULL)")
        } run: {
            try await context.idempotent { try await ingestion.migrate(on: context.client, logger: logger) }
            return try await ingest(context: context, ingestion: ingestion, sideTable: sideTable)
        }
    }

    private func ingest(context: DemoContext, ingestion: ExactlyOnceIngestion<String>, sideTable: QualifiedName) async throws -> [ScenarioOutcome] {
        let logger = context.logger
        // Round r of producer p: its own keys, plus keys of other producers' round r.
        let own = Int(Double(batchSize) * (1 - duplicateShare))
        var generator = SystemRandomNumberGenerator()
        var plan: [[[String]]] = []
        var distinct = Set<String>()
        for producer in 0..<producers {
            var batches: [[String]] = []
            for round in 0..<batchesPerProducer {
                var keys = (0..<own).map { "evt-\(producer)-\(round)-\($0)" }
                while keys.count < batchSize {
                    keys.append("evt-\(Int.random(in: 0..<producers, using: &generator))-\(round)-\(Int.random(in: 0..<own, using: &generator))")
                }
                keys.shuffle(using: &generator)
                distinct.formUnion(keys)
                batches.append(keys)
            }
            plan.append(batches)
        }
        let total = producers * batchesPerProducer * batchSize
        context.progress.step("\(name): \(producers) producers × \(batchesPerProducer) batches of \(batchSize) events, \(total - distinct.count) duplicates across producers")

        let started = ContinuousClock.now
        let newCounts = try await concurrently(producers) { [plan] producer in
            var new = 0
            for keys in plan[producer] {
                // Re-run after a lost connection only when nothing was committed; a COMMIT
                // lost in flight is settled first, so the report counts each key once.
                let report = try await ingestion.ingest(keys: keys, on: context.client, retry: DemoContext.retryPolicy, logger: logger) { tx, newKeys in
                    if tx.attempt > 1 { context.faults.rerun() }
                    try await tx.query("""
                        INSERT INTO \(identifier: sideTable) (key, producer) SELECT k, \(Int32(producer)) FROM unnest(\(newKeys)::text[]) AS u(k)
                        """)
                }
                new += report.newEventCount
            }
            return new
        }.reduce(0, +)
        let elapsed = ContinuousClock.now - started

        let (stored, effects, effectKeys) = try await context.idempotentTransaction { tx in
            let stored = try await tx.query("SELECT count(*)::int8 FROM \(identifier: ingestion.table)").rows[0].decode(Int64.self)
            let effects = try await tx.query("SELECT count(*)::int8, count(DISTINCT key)::int8 FROM \(identifier: sideTable)").rows[0].decode((Int64, Int64).self)
            return (stored, effects.0, effects.1)
        }
        let expected = Int64(distinct.count)
        let detail = "\(total) events, \(expected) distinct keys: \(stored) stored, \(effects) handler effects on \(effectKeys) keys, \(newCounts) reported new"
        context.progress.done(detail)
        return [
            outcome(
                "each key stored once; handler effects = distinct keys",
                passed: stored == expected && effects == expected && effectKeys == expected && Int64(newCounts) == expected, detail: detail
            ).rate(total, per: elapsed, unit: "events/s"),
        ]
    }
}
