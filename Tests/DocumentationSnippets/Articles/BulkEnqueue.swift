// The Swift blocks of the DocC article BulkEnqueue.md.
import Logging
import PostgresLocks
import PostgresNIO
import PostgresQueue

/// The payload of the article's jobs.
struct Reindex: Codable, Sendable {
    var documentID: Int64
}

func articleBulkEnqueue(queue: JobQueue, client: PostgresClient, documentIDs: [Int64], logger: Logger) async throws {
    let jobs = try documentIDs.map { try NewJob(kind: "reindex", payload: Reindex(documentID: $0), queue: "backfill", priority: 10) }
    let inserted = try await queue.enqueueByCopy(jobs, on: client, logger: logger)
    _ = inserted
}
