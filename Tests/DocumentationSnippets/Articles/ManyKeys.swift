// The Swift blocks of the DocC article ManyKeys.md.
import Logging
import PostgresLocks
import PostgresNIO

func articleManyKeys(client: PostgresClient, logger: Logger, orderIDs: [Int32]) async throws {
    let requests = orderIDs.map { LockRequest(.pair(namespace: 1, id: $0)) }
        + [LockRequest(.hashed("warehouse:7"), mode: .shared)]
    try await client.withAdvisoryLocks(requests, wait: .timeout(.seconds(1)), logger: logger) { tx in
        /* … */
    }
}
