/// Capped exponential backoff with equal jitter: the one backoff of the library (retried
/// transactions, failed queue jobs, a leader election's reconnects).
///
/// After attempt `n` the ceiling is `min(maximum, initial × 2^(n-1))`, and the delay is drawn
/// uniformly from `ceiling/2 … ceiling` ("equal jitter"): retries of many callers that failed
/// together spread out instead of arriving as one wave.
public struct Backoff: Sendable, Hashable {
    /// The ceiling after the first failed attempt.
    public var initial: Duration
    /// The largest ceiling.
    public var maximum: Duration

    /// A backoff from `initial` doubling up to `maximum`.
    public init(initial: Duration = .seconds(1), maximum: Duration = .seconds(3600)) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The delay after `attempt` (1 for the first) failed.
    public func delay<G: RandomNumberGenerator>(afterAttempt attempt: Int, using generator: inout G) -> Duration {
        let ceiling = self.ceilingNanoseconds(afterAttempt: attempt)
        guard ceiling > 0 else { return .zero }
        let half = ceiling / 2
        return .nanoseconds(half + Int64.random(in: 0...(ceiling - half), using: &generator))
    }

    /// The delay after `attempt`, with the system's random numbers.
    public func delay(afterAttempt attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(afterAttempt: attempt, using: &generator)
    }

    /// The ceiling in nanoseconds after `attempt`.
    func ceilingNanoseconds(afterAttempt attempt: Int) -> Int64 {
        let initial = Self.nanoseconds(self.initial)
        let maximum = Self.nanoseconds(self.maximum)
        let exponent = min(max(attempt - 1, 0), 40)
        let (scaled, overflow) = initial.multipliedReportingOverflow(by: Int64(1) << exponent)
        return overflow ? maximum : min(scaled, maximum)
    }

    /// A duration in whole nanoseconds, never negative, saturating far below overflow.
    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? Int64.max / 4 : max(0, whole + attoseconds / 1_000_000_000)
    }

    /// A duration in whole milliseconds, never negative, saturating far below overflow.
    package static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        return overflow ? Int64.max / 4 : max(0, whole + attoseconds / 1_000_000_000_000_000)
    }
}
