/// How long a library call keeps leasing again when the pool hands out connections that are
/// already closed (see `PostgresClient.withLibraryConnection`).
let deadLeaseBudget: Duration = .seconds(10)

/// The decision to lease again after a closed connection, as a value: a pause that doubles from
/// 1 ms up to 50 ms between leases, for at most `budget` from the first dead lease.
struct DeadLeaseRetry {
    /// The time allowed from the first dead lease.
    let budget: Duration
    /// How many dead connections were handed out so far.
    private(set) var count = 0
    private var firstAt: ContinuousClock.Instant?

    init(budget: Duration) { self.budget = budget }

    /// Records a dead lease at `now`; whether to lease again (true) or let the call meet the
    /// closed connection (false: the budget is spent).
    mutating func shouldLeaseAgain(now: ContinuousClock.Instant) -> Bool {
        let first = firstAt ?? now
        firstAt = first
        guard now - first < budget else { return false }
        count += 1
        return true
    }

    /// The pause before the next lease: the pool notices a close on its event loop.
    var pause: Duration {
        .milliseconds(min(50, 1 << min(count - 1, 6)))
    }
}
