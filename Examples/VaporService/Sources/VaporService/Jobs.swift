import Fluent
import Foundation
import PostgresLocks
import PostgresQueue

/// Indexes a new document: enqueued in the transaction that saves it, so it exists only if
/// the document does.
struct IndexDocument: JobDefinition {
    static let kind = "index-document"
    let documentID: UUID
}

/// A periodic summary, enqueued once a minute by the scheduler's leader.
struct Digest: JobDefinition {
    static let kind = "digest"
}

extension JobHandlers {
    /// The service's handlers.
    static func vaporService(_ library: Library) -> JobHandlers {
        var handlers = JobHandlers()
        // The document is marked indexed and the job completed in one transaction.
        handlers.register(IndexDocument.self) { job, context in
            try await context.client.withCheckedTransaction(logger: context.logger) { tx in
                try await tx.query("UPDATE documents SET indexed_at = now() WHERE id = \(job.documentID)")
                try await context.complete(in: tx)
            }
        }
        handlers.register(Digest.self) { _, context in
            context.logger.info("digest: nothing to send")
        }
        return handlers
    }
}
