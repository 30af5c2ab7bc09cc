// The Swift blocks of the DocC article AdvisoryLocks.md, each verbatim inside a function that
// declares what it assumes; `DocumentationCodeTests` checks they are here as written.
import Logging
import PostgresLocks
import PostgresNIO

func reindexEverything() async throws {}

func articleAdvisoryLocks(client: PostgresClient, logger: Logger, orderID: Int32) async throws {
    // Transaction scope: released by COMMIT or ROLLBACK; the body's statements run in that transaction.
    try await client.withAdvisoryLock(.hashed("invoice-series:acme"), wait: .timeout(.seconds(2)), logger: logger) { tx in
        try await tx.query("UPDATE invoice_series SET last = last + 1 WHERE name = 'acme'")
    }

    // Inside your own transaction:
    try await client.withCheckedTransaction(logger: logger) { tx in
        try await tx.advisoryLock(.pair(namespace: 1, id: orderID))
        /* … */
    }

    // Session scope, for work that spans many transactions:
    try await client.withSessionAdvisoryLock(.hashed("reindex"), wait: .immediately, logger: logger) {
        try await reindexEverything()
    }
}
