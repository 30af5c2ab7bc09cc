import Logging
import PostgresLocks
import PostgresNIO

/// Seed 002's singleton job: ten instances keep trying to run the same job; the job's runs,
/// recorded in the database with their start and end times, never overlap.
struct SingletonScenario: DemoScenario {
    var name: String { "singleton job" }
    var instances = 10
    var duration: Duration = .milliseconds(1500)

    func run(context: DemoContext) async throws -> [ScenarioOutcome] {
        let table = try QualifiedName("pglock_demo_singleton_runs")
        let logger = context.logger
        let client = context.client
        try await client.withCheckedTransaction(logger: logger) { tx in
            try await tx.query("DROP TABLE IF EXISTS \(identifier: table)")
            try await tx.query("CREATE TABLE \(identifier: table) (id bigserial PRIMARY KEY, instance int NOT NULL, started timestamptz NOT NULL, ended timestamptz)")
        }
        context.progress.step("\(name): \(instances) instances calling runSingleton(\"pglock-demo-report\") for \(format(duration))")
        let end = ContinuousClock.now + duration
        let (ran, skipped) = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for instance in 0..<instances {
                group.addTask {
                    var ran = 0, skipped = 0
                    while ContinuousClock.now < end {
                        let outcome = try await client.runSingleton("pglock-demo-report", logger: logger) {
                            let id = try await client.withCheckedTransaction(logger: logger) { tx in
                                try await tx.query("INSERT INTO \(identifier: table) (instance, started) VALUES (\(instance), clock_timestamp()) RETURNING id").rows[0].decode(Int64.self)
                            }
                            // The job's work: a little real database work.
                            try await client.withCheckedTransaction(logger: logger) { tx in
                                try await tx.query("SELECT count(*) FROM generate_series(1, 20000)")
                                try await tx.query("UPDATE \(identifier: table) SET ended = clock_timestamp() WHERE id = \(id)")
                            }
                        }
                        if outcome.wasSkipped {
                            skipped += 1
                            // A scheduler would try again on its next tick; a short pause stands for it.
                            try await Task.sleep(for: .milliseconds(5))
                        } else {
                            ran += 1
                        }
                    }
                    return (ran, skipped)
                }
            }
            return try await group.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
        }
        let overlaps = try await client.withCheckedTransaction(logger: logger) { tx in
            try await tx.query("""
                SELECT count(*)::int8 FROM \(identifier: table) a JOIN \(identifier: table) b
                  ON a.id < b.id AND tstzrange(a.started, a.ended) && tstzrange(b.started, b.ended)
                """).rows[0].decode(Int64.self)
        }
        let unfinished = try await client.withCheckedTransaction(logger: logger) { tx in
            try await tx.query("SELECT count(*)::int8 FROM \(identifier: table) WHERE ended IS NULL").rows[0].decode(Int64.self)
        }
        if !context.keepTables {
            try await client.withCheckedTransaction(logger: logger) { tx in try await tx.query("DROP TABLE IF EXISTS \(identifier: table)") }
        }
        let detail = "\(ran) runs, \(skipped) skips, \(overlaps) overlapping runs"
        context.progress.done(detail)
        return [ScenarioOutcome(
            scenario: name, check: "one instance at a time, others skip",
            passed: overlaps == 0 && unfinished == 0 && ran > 0 && skipped > 0,
            detail: detail, throughput: Double(ran) / seconds(duration), unit: "runs/s"
        )]
    }
}
