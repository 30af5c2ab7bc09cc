import Logging
import Metrics
import PostgresNIO
import Tracing

/// The one retry loop: runs `attemptOnce(attempt)` and, when it fails with an error `policy`
/// retries, waits the policy's backoff and runs it again with the next attempt number. A lost
/// connection is retried only where each attempt gets a new connection (`reconnects`).
///
/// The whole is a `pglocks.retrying_transaction` span with the number of attempts and an event
/// `retry` (reason, backoff) per retry; each attempt's span is its child.
func retryWholeTransaction<Value: Sendable>(
    policy: RetryPolicy,
    reconnects: Bool,
    logger: Logger,
    isolation: isolated (any Actor)? = #isolation,
    _ attemptOnce: (Int) async throws -> Value
) async throws -> Value {
    try await LibrarySpan.with("pglocks.retrying_transaction") { span in
        var generator = SystemRandomNumberGenerator()
        var attempt = 1
        defer { span.attributes["pglocks.transaction.attempts"] = attempt }
        while true {
            do {
                return try await attemptOnce(attempt)
            } catch {
                guard policy.shouldRetry(error, afterAttempt: attempt) else { throw error }
                let code = (error as? PostgresLocksError)?.code ?? .client
                guard reconnects || code != .connectionLost else { throw error }
                // A pool that still hands out the lost connection is handled where connections
                // are leased (`withLibraryConnection` leases another): the policy's backoff is enough.
                let delay = policy.backoff(afterAttempt: attempt, using: &generator)
                Counter(label: "pglocks_transaction_retries_total", dimensions: [("reason", code.name)]).increment()
                logger.debug("retrying transaction", metadata: [
                    "attempt": "\(attempt)", "reason": "\(code.name)", "backoff_ms": "\(Backoff.milliseconds(delay))",
                ])
                span.addEvent(SpanEvent(name: "retry", attributes: [
                    "pglocks.retry.attempt": .int64(Int64(attempt)),
                    "pglocks.retry.reason": .string(code.name),
                    "pglocks.retry.backoff_ms": .int64(Backoff.milliseconds(delay)),
                ]))
                try await Task.sleep(for: delay)
                attempt += 1
            }
        }
    }
}
