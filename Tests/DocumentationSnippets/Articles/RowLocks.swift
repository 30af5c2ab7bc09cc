// The Swift blocks of the DocC article RowLocks.md.
import Logging
import PostgresLocks
import PostgresNIO

func articleRowLocks(client: PostgresClient, logger: Logger) async throws {
    let claim = try RowLock(.noKeyUpdate, of: ["jobs"], waiting: .skipLocked)
    try await client.withCheckedTransaction(logger: logger) { tx in
        try await tx.setLockTimeout(.milliseconds(500))
        let ids = try await tx.query("""
            SELECT id FROM jobs WHERE state = 'ready' ORDER BY id LIMIT 10 \(rowLock: claim)
            """).rows.map { try $0.decode(Int64.self) }
        try await tx.query("UPDATE jobs SET state = 'running' WHERE id = ANY(\(ids))")
    }
}
