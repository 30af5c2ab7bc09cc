import Foundation
import Logging
import PostgresLocks
import PostgresNIO

/// What a handler gets besides its payload.
public struct JobContext: Sendable {
    /// The job, with its lease.
    public let job: ClaimedJob
    /// The queue.
    public let queue: JobQueue
    /// A client for the job's own work.
    public let client: PostgresClient
    let baseLogger: Logger
    let completedInTransaction: SetOnceFlag

    /// A logger with the job's id, kind and attempt as metadata.
    public var logger: Logger {
        var logger = baseLogger
        logger[metadataKey: "job"] = "\(job.id)"
        logger[metadataKey: "kind"] = "\(job.kind)"
        logger[metadataKey: "attempt"] = "\(job.attempt)"
        return logger
    }

    /// Completes the job inside the handler's own transaction, so its writes and its
    /// completion commit together (exactly once, as far as the database is concerned). The
    /// worker then records nothing more for it.
    ///
    /// - Throws: ``PostgresQueueError/Code/leaseLost`` if the lease is gone.
    public func complete(in transaction: Transaction, outputJSON: String? = nil) async throws {
        try await queue.complete(job.lease, outputJSON: outputJSON, in: transaction)
        completedInTransaction.set()
    }
}
