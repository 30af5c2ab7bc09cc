// The Swift blocks of the DocC article SingletonJobs.md.
import Logging
import PostgresLocks
import PostgresNIO

enum Namespaces { static let orders: Int32 = 3 }

func articleSingletonJobs(client: PostgresClient, logger: Logger, orderID: Int32) async throws {
    // Not run when another instance is running it (the default, `wait: .immediately`);
    // `wait: .forever` waits for its turn, `.timeout(d)` at most d.
    do {
        let report = try await client.runSingleton("nightly-report", logger: logger) { try await buildReport() }
        logger.info("built", metadata: ["rows": "\(report.rows)"])
    } catch let error as PostgresLocksError where error.code == .lockTimeout {
        logger.info("another instance is building it")
    }

    // One transaction at a time per order; other orders go on in parallel.
    try await client.withAdvisoryLock(.pair(namespace: Namespaces.orders, id: orderID), logger: logger) { tx in
        /* … */
    }
}
