/// When and how often a whole transaction is re-run after a transient failure.
///
/// Deadlocks (40P01) and serialization failures (40001) are always retryable: PostgreSQL
/// aborted the transaction, and running it again from the start is the documented remedy.
/// Lock-not-available (55P03, from `NOWAIT` or `lock_timeout`) is retried only when
/// ``retryOnLockNotAvailable`` is set. Anything else, a lost connection included (the
/// outcome of a `COMMIT` whose reply was lost is unknown), is never retried.
///
/// Delays grow exponentially from ``initialBackoff``, are capped at ``maximumBackoff``, and are
/// jittered ("equal jitter": half fixed, half random) so that colliding transactions spread out.
public struct RetryPolicy: Sendable, Hashable {
    /// How many times the body may run in total (the first run included). At least 1.
    public var maximumAttempts: Int
    /// The delay scale before the first retry.
    public var initialBackoff: Duration
    /// The largest delay between attempts.
    public var maximumBackoff: Duration
    /// Also retry on 55P03 (`NOWAIT` failed, `lock_timeout` expired).
    public var retryOnLockNotAvailable: Bool

    /// Creates a policy.
    public init(
        maximumAttempts: Int = 5,
        initialBackoff: Duration = .milliseconds(5),
        maximumBackoff: Duration = .seconds(1),
        retryOnLockNotAvailable: Bool = false
    ) {
        self.maximumAttempts = maximumAttempts
        self.initialBackoff = initialBackoff
        self.maximumBackoff = maximumBackoff
        self.retryOnLockNotAvailable = retryOnLockNotAvailable
    }

    /// Five attempts, 5 ms growing to at most 1 s.
    public static let `default` = RetryPolicy()

    /// Checks the policy's values.
    public func validate() throws(PostgresLocksError) {
        guard maximumAttempts >= 1 else {
            throw .invalidArgument("maximumAttempts must be at least 1; found \(maximumAttempts)")
        }
        guard maximumAttempts <= 1_000 else {
            throw .invalidArgument("maximumAttempts must be at most 1000; found \(maximumAttempts)")
        }
        guard initialBackoff >= .zero, maximumBackoff >= .zero else {
            throw .invalidArgument("backoff durations must not be negative")
        }
        guard maximumBackoff <= .seconds(3600) else {
            throw .invalidArgument("maximumBackoff must be at most one hour; found \(maximumBackoff)")
        }
    }

    /// Whether `error` after attempt number `attempt` (1-based) should lead to another attempt.
    public func shouldRetry(_ error: any Error, afterAttempt attempt: Int) -> Bool {
        guard attempt < maximumAttempts, let error = error as? PostgresLocksError else { return false }
        switch error.code {
        case .deadlock, .serializationFailure: return true
        case .lockNotAvailable: return retryOnLockNotAvailable
        default: return false
        }
    }

    /// The delay before attempt `attempt + 1`: `d = min(maximumBackoff, initialBackoff × 2^(attempt-1))`,
    /// then a value drawn uniformly from `d/2 ... d`.
    public func backoff<G: RandomNumberGenerator>(afterAttempt attempt: Int, using generator: inout G) -> Duration {
        let exponent = min(max(attempt - 1, 0), 40)
        let initialNanoseconds = Self.nanoseconds(initialBackoff)
        let capNanoseconds = Self.nanoseconds(maximumBackoff)
        let (scaled, overflow) = initialNanoseconds.multipliedReportingOverflow(by: Int64(1) << exponent)
        let ceiling = overflow ? capNanoseconds : min(scaled, capNanoseconds)
        guard ceiling > 0 else { return .zero }
        let half = ceiling / 2
        return .nanoseconds(half + Int64.random(in: 0...(ceiling - half), using: &generator))
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? Int64.max / 2 : whole + attoseconds / 1_000_000_000
    }
}
