import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import PostgresQueue
import ServiceLifecycle

/// A migrated queue in the test's database.
func makeQueue(_ db: TestContext, schema: String = "q") async throws -> JobQueue {
    let queue = try JobQueue(schema: schema)
    try await queue.migrate(on: db.client, logger: db.logger)
    return queue
}

/// A worker configuration that reacts fast, listening on a dedicated connection.
func fastConfiguration(_ db: TestContext, concurrency: Int = 8, lease: Duration = .seconds(5), owner: String? = nil) throws -> QueueWorker.Configuration {
    QueueWorker.Configuration(
        queue: "default", concurrency: concurrency, claimBatchSize: 50, lease: lease,
        pollInterval: .milliseconds(100), reapInterval: .milliseconds(100), backoff: Backoff(initial: .milliseconds(50), maximum: .milliseconds(200)),
        shutdownGracePeriod: .seconds(5), owner: owner,
        listen: db.settings
    )
}

/// Runs `workers` in a service group while `body` runs, then shuts them down gracefully.
func withWorkers<T: Sendable>(_ workers: [QueueWorker], logger: Logger, _ body: @Sendable () async throws -> T) async throws -> T {
    try await withRunningServices(workers, logger: logger, body)
}

/// Counts of the test queue's jobs by state.
func stateCounts(_ db: TestContext, schema: String = "q") async throws -> [String: Int] {
    var counts: [String: Int] = [:]
    for row in try await db.query("SELECT state, count(*)::int FROM \(identifier: try QualifiedName(schema: schema, "all_jobs")) GROUP BY state") {
        let (state, count) = try row.decode((String, Int).self)
        counts[state] = count
    }
    return counts
}

struct Work: Codable, Sendable, Hashable {
    var n: Int
}
