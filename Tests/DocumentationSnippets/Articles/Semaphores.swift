// The Swift blocks of the DocC article Semaphores.md.
import Logging
import PostgresLocks
import PostgresNIO

func articleSemaphores(client: PostgresClient, logger: Logger, imageID: Int) async throws {
    // At most 4 renders at once, across every instance of the service.
    try await client.withSemaphore("thumbnails", permits: 4, logger: logger) { tx in
        try await tx.query("UPDATE images SET rendered_at = now() WHERE id = \(imageID)")
    }

    // A permit for long work outside any transaction: released when the body ends, and the body
    // is cancelled with `lockLost` if the session holding the permit dies.
    try await client.withSessionSemaphore("partner-api", permits: 2, wait: .timeout(.seconds(30)), logger: logger) {
        try await exportToPartner()
    }

    // Inside a transaction you already have: the permit ends with it.
    try await client.withCheckedTransaction(logger: logger) { tx in
        let permit = try await tx.semaphorePermit(try AdvisorySemaphore("reports", permits: 3))
        logger.info("running a report", metadata: ["permit": "\(permit)"])
    }
}

@Sendable func exportToPartner() async throws {}
