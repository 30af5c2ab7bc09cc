// The Swift blocks of the DocC article Monitoring.md.
import Logging
import PostgresLocks
import PostgresNIO

func articleMonitoring(client: PostgresClient, logger: Logger) async throws {
    let snapshot = try await client.lockSnapshot(logger: logger)
    for root in snapshot.blockingTree {
        logger.warning("root blocker", metadata: ["pid": "\(root.pid)", "waiting": "\(root.waiterCount)"])
    }
    let diagnosis = try await client.diagnose(logger: logger)
    precondition(diagnosis.passed, "\(diagnosis.verdicts)")
}
