// The Swift blocks of the DocC article IngestingExactlyOnce.md.
import Foundation
import Logging
import PostgresLocks
import PostgresNIO

/// A message broker's next batch (none here: the snippet is compiled, not run).
func nextBatch<Event>() async throws -> [Event] { [] }

func articleIngestion(client: PostgresClient, logger: Logger) async throws {
    struct OrderPlaced: Sendable { var id: UUID; var amount: Int64 }
    let batch: [OrderPlaced] = try await nextBatch()   // from your message broker

    let ingestion = try ExactlyOnceIngestion<UUID>(table: QualifiedName("order_events_seen"))
    try await ingestion.migrate(on: client, logger: logger)   // (key uuid PRIMARY KEY, ingested_at timestamptz)

    let report = try await ingestion.ingest(batch, keyedBy: \.id, on: client, logger: logger) { tx, newEvents in
        // Only events never ingested before; same transaction as the key insert.
        try await tx.query("""
            INSERT INTO orders (id, amount)
            SELECT * FROM unnest(\(newEvents.map(\.id))::uuid[], \(newEvents.map(\.amount))::int8[])
            """)
    }
    logger.info("ingested", metadata: ["new": "\(report.newEventCount)", "duplicates": "\(report.duplicateEventCount)"])
}
