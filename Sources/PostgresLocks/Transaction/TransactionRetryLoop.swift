import Logging
import Metrics
import PostgresNIO

/// The one retry loop: runs `attemptOnce(attempt)` and, when it fails with an error `policy`
/// retries, waits the policy's backoff and runs it again with the next attempt number. A lost
/// connection is retried only where each attempt gets a new connection (`reconnects`).
func retryWholeTransaction<Value>(
    policy: RetryPolicy,
    reconnects: Bool,
    logger: Logger,
    isolation: isolated (any Actor)? = #isolation,
    _ attemptOnce: (Int) async throws -> Value
) async throws -> Value {
    var generator = SystemRandomNumberGenerator()
    var attempt = 1
    while true {
        do {
            return try await attemptOnce(attempt)
        } catch {
            guard policy.shouldRetry(error, afterAttempt: attempt) else { throw error }
            let code = (error as? PostgresLocksError)?.code ?? .client
            guard reconnects || code != .connectionLost else { throw error }
            // A pool that still hands out the lost connection is handled where connections are
            // leased (`withLibraryConnection` leases another): the policy's backoff is enough.
            let delay = policy.backoff(afterAttempt: attempt, using: &generator)
            Counter(label: "pglocks_transaction_retries_total", dimensions: [("reason", code.name)]).increment()
            logger.debug("retrying transaction", metadata: [
                "attempt": "\(attempt)", "reason": "\(code.name)", "backoff_ms": "\(Backoff.milliseconds(delay))",
            ])
            try await Task.sleep(for: delay)
            attempt += 1
        }
    }
}
