import PostgresLocks
import PostgresLocksTestSupport
import Testing

@Suite("Retry policy")
struct RetryPolicyTests {
    @Test func backoffGrowsExponentiallyIsJitteredAndCapped() {
        let policy = RetryPolicy(maximumAttempts: 20, initialBackoff: .milliseconds(10), maximumBackoff: .milliseconds(500))
        var generator = SplitMix64(state: 42)
        for attempt in 1...12 {
            let ceiling = min(Duration.milliseconds(10) * (1 << (attempt - 1)), .milliseconds(500))
            var seen: Set<Duration> = []
            for _ in 0..<50 {
                let delay = policy.backoff(afterAttempt: attempt, using: &generator)
                #expect(delay >= ceiling / 2 && delay <= ceiling, "attempt \(attempt): \(delay) outside \(ceiling / 2)...\(ceiling)")
                seen.insert(delay)
            }
            #expect(seen.count > 1, "no jitter at attempt \(attempt)")
        }
    }

    @Test func onlyTransientErrorsAreRetriedAndOnlyWhileAttemptsRemain() {
        let policy = RetryPolicy(maximumAttempts: 3)
        let deadlock = PostgresLocksError(code: .deadlock, message: "x", sqlState: "40P01")
        let serialization = PostgresLocksError(code: .serializationFailure, message: "x", sqlState: "40001")
        let lockNotAvailable = PostgresLocksError(code: .lockNotAvailable, message: "x", sqlState: "55P03")
        let unique = PostgresLocksError(code: .uniqueViolation, message: "x", sqlState: "23505")
        #expect(policy.shouldRetry(deadlock, afterAttempt: 1))
        #expect(policy.shouldRetry(serialization, afterAttempt: 2))
        #expect(!policy.shouldRetry(serialization, afterAttempt: 3))
        #expect(!policy.shouldRetry(lockNotAvailable, afterAttempt: 1))
        #expect(RetryPolicy(retryOnLockNotAvailable: true).shouldRetry(lockNotAvailable, afterAttempt: 1))
        #expect(!policy.shouldRetry(unique, afterAttempt: 1))
        #expect(!policy.shouldRetry(CancellationError(), afterAttempt: 1))
        #expect(!policy.shouldRetry(PostgresLocksError(code: .connectionLost, message: "x"), afterAttempt: 1))
    }

    @Test func invalidPoliciesAreRejected() {
        #expect(throws: PostgresLocksError.self) { try RetryPolicy(maximumAttempts: 0).validate() }
        #expect(throws: PostgresLocksError.self) { try RetryPolicy(initialBackoff: .milliseconds(-1)).validate() }
        #expect(throws: PostgresLocksError.self) { try RetryPolicy(maximumBackoff: .seconds(100_000)).validate() }
    }

    @Test(arguments: [
        ("40P01", PostgresLocksError.Code.deadlock), ("40001", .serializationFailure), ("55P03", .lockNotAvailable),
        ("57014", .queryCanceled), ("53200", .lockTableFull), ("23505", .uniqueViolation), ("08006", .connectionLost),
        ("08003", .connectionLost), ("57P01", .connectionLost), ("25P02", .inFailedTransaction), ("22012", .server),
    ])
    func sqlStatesMapToReadableCodes(state: String, code: PostgresLocksError.Code) {
        #expect(PostgresLocksError.code(forSQLState: state) == code)
    }
}
