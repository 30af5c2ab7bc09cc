// The Swift blocks of the DocC article PostgresLocks.md (the catalog's landing page).
import Foundation
import Logging
import PostgresLocks
import PostgresNIO

func articleLandingPage(logger: Logger, from: Int64, to: Int64) async throws {
    let settings = try ConnectionSettings.fromEnvironment(ProcessInfo.processInfo.environment)
    // A fixed pool without keep-alive queries: memory stays flat under load (see PoolConfiguration).
    let client = PostgresClient(configuration: try settings.makeClientConfiguration(poolSize: 10), backgroundLogger: logger)

    try await client.withRetryingTransaction(logger: logger) { tx in
        try await tx.query("UPDATE accounts SET balance = balance - 10 WHERE id = \(from)")
        try await tx.query("UPDATE accounts SET balance = balance + 10 WHERE id = \(to)")
    }
}
