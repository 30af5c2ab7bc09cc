// The Swift blocks of the DocC article LimitsAndControl.md.
import Logging
import PostgresLocks
import PostgresNIO
import PostgresQueue

func articleLimitsAndControl(queue: JobQueue, client: PostgresClient, jobID: Int64, logger: Logger) async throws {
    // At most 3 exports running at once, across every worker of every process.
    try await queue.setLimits(JobLimits(kind: "export", maxRunning: 3), queue: "default", on: client, logger: logger)
    // At most 10 charges started per second (a sliding window).
    try await queue.setLimits(JobLimits(kind: "charge", rate: .init(10, per: .seconds(1))), queue: "default", on: client, logger: logger)
    // The queue as a whole: at most 50 running, whatever their kind.
    try await queue.setLimits(JobLimits(maxRunning: 50), queue: "default", on: client, logger: logger)
    // Lift the limits on one kind (kind nil: the queue-wide ones).
    try await queue.removeLimits(queue: "default", kind: "export", on: client, logger: logger)

    try await queue.pause("default", on: client, logger: logger)              // no claims from now on; running jobs go on
    try await queue.resume("default", on: client, logger: logger)
    try await queue.setConcurrency(4, of: "default", on: client, logger: logger)    // each worker runs at most 4
    try await queue.setConcurrency(nil, of: "default", on: client, logger: logger)  // back to each worker's configured value
    let control = try await queue.control(of: "default", on: client, logger: logger)  // paused, concurrency, limits
    _ = control

    if try await queue.cancel(id: jobID, on: client, logger: logger) {
        logger.info("cancelled")        // it was available or running; now it is cancelled
    }
}
