import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Synchronization
import Testing

@Suite("Retrying transactions")
struct RetryingTransactionTests {
    @Test func deadlockedTransactionsBothCommitOneAfterARetry() async throws {
        try await TestDatabase.withDatabase { db in
            let outcomes = try await runDeadlockPair(db, retry: RetryPolicy(maximumAttempts: 5, initialBackoff: .milliseconds(1)))
            #expect(outcomes.allSatisfy { $0.error == nil }, "errors: \(outcomes.compactMap { $0.error.map { "\($0)" } })")
            #expect(outcomes.map(\.attempts).sorted() == [1, 2])
            #expect(try await db.scalar("SELECT count(*)::int FROM deadlock_log", as: Int.self) == 2)
            #expect(try await db.scalar("SELECT max(attempt)::int FROM deadlock_log", as: Int.self) == 2)
        }
    }

    @Test func nonRetryableErrorIsThrownAtOnce() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.query("CREATE TABLE u (k int PRIMARY KEY)")
            try await db.query("INSERT INTO u VALUES (1)")
            let attempts = LockedBox(0)
            let error = await #expect(throws: PostgresLocksError.self) {
                try await db.client.withRetryingTransaction(logger: db.logger) { tx in
                    attempts.withLock { $0 += 1 }
                    try await tx.query("INSERT INTO u VALUES (1)")
                }
            }
            #expect(error?.code == .uniqueViolation)
            #expect(attempts.withLock { $0 } == 1)
        }
    }

    @Test func serializationFailuresAreRetriedUntilAttemptsRunOutThenTheLastErrorIsThrown() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.query("CREATE TABLE s (n int)")
            try await db.query("INSERT INTO s VALUES (0)")
            let attempts = LockedBox(0)
            let policy = RetryPolicy(maximumAttempts: 3, initialBackoff: .milliseconds(1))
            let error = await #expect(throws: PostgresLocksError.self) {
                try await db.client.withRetryingTransaction(retry: policy, options: .init(isolation: .repeatableRead), logger: db.logger) { tx in
                    let attempt = attempts.withLock { $0 += 1; return $0 }
                    _ = try await tx.query("SELECT n FROM s")
                    // Another transaction changes the row after our snapshot: our update must fail with 40001.
                    try await db.query("UPDATE s SET n = \(attempt)")
                    try await tx.query("UPDATE s SET n = n + 100")
                }
            }
            #expect(error?.code == .serializationFailure)
            #expect(attempts.withLock { $0 } == 3)
            #expect(try await db.scalar("SELECT n FROM s", as: Int.self) == 3)
        }
    }

    @Test func retryRunsAFreshTransactionEachTime() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.query("CREATE TABLE r (attempt int)")
            let policy = RetryPolicy(maximumAttempts: 4, initialBackoff: .milliseconds(1))
            try await db.client.withRetryingTransaction(retry: policy, logger: db.logger) { tx in
                try await tx.query("INSERT INTO r VALUES (\(tx.attempt))")
                if tx.attempt < 3 {
                    throw PostgresLocksError(code: .deadlock, message: "simulated", sqlState: "40P01")
                }
            }
            // Only the third attempt's row committed: the first two were rolled back.
            #expect(try await db.scalar("SELECT string_agg(attempt::text, ',') FROM r", as: String.self) == "3")
        }
    }
}
