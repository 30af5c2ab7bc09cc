// The Swift blocks of the DocC article CheckedAndRetryingTransactions.md.
import Logging
import PostgresLocks
import PostgresNIO

func articleCheckedTransaction(client: PostgresClient, logger: Logger, tenantKey: Int64, tenant: String) async throws {
    try await client.withCheckedTransaction(options: .init(lockTimeout: .seconds(2)), logger: logger) { tx in
        try await tx.query("SELECT pg_advisory_xact_lock(\(tenantKey))")
        let next = try await tx.query("SELECT COALESCE(MAX(version), 0) + 1 FROM instructions WHERE target = \(tenant)")
            .rows[0].decode(Int.self)
        try await tx.query("INSERT INTO instructions (target, version) VALUES (\(tenant), \(next))")
    }
}

func articleRetryingTransaction(client: PostgresClient, logger: Logger, versions: GaplessCounter, body: String) async throws -> Int64 {
    let version = try await client.withRetryingTransaction(retry: .resolvingCommitOutcome, logger: logger) { tx in
        let version = try await versions.next(scope: "doc-42", in: tx)
        try await tx.query("INSERT INTO history (doc, version, body) VALUES (42, \(version), \(body))")
        return version
    }
    return version
}
