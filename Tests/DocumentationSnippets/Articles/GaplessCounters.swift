// The Swift blocks of the DocC article GaplessCounters.md.
import Logging
import PostgresLocks
import PostgresNIO

func articleGaplessCounters(client: PostgresClient, logger: Logger, documentID: Int64, body: String) async throws {
    let versions = try GaplessCounter(table: "document_versions")   // strategy: .counterRow
    try await versions.migrate(on: client, logger: logger)

    try await versions.withNextNumber(scope: "doc-\(documentID)", on: client, logger: logger) { version, tx in
        try await tx.query("INSERT INTO document_history (document, version, body) VALUES (\(documentID), \(version), \(body))")
    }
}
