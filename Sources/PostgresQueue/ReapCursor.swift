import Foundation
import PostgresLocks

/// Which expired leases a worker's next reaper pass looks at, as a pure value (see
/// ``QueueWorker``).
///
/// Why it exists: the reaper walks the `jobs_running_lease` index from the oldest lease expiry
/// up to now. Every job that ever ran leaves entries there, and while one old snapshot is held
/// none of them can be marked dead, so a pass from the start visits every job completed since
/// that snapshot began, and the longer it is held, the slower each pass (every few seconds,
/// in every worker). So a worker remembers where its last pass ended (the server's `now()` then,
/// less ``margin``) and normally looks only at leases that expired since ``floor``: those cost
/// what the jobs finished in one interval cost, however long a snapshot is held.
///
/// A lease can still be missed by a bounded pass: one that was row-locked by someone else
/// when a pass looked (`SKIP LOCKED`) and then kept its old expiry. A full pass finds those,
/// once the last full pass is ``fullPassInterval`` old: ``costFactor`` (20) times its own
/// duration, at least ``minimumInterval``. A pass that reaped its whole limit leaves the floor
/// where it was (there may be more before the point it reached).
package struct ReapCursor: Equatable, Sendable {
    /// How to run the next pass.
    package enum Pass: Equatable, Sendable {
        /// Every expired lease.
        case full
        /// Only leases that expired at or after this instant.
        case since(Date)

        /// The lower bound of lease expiry to look at (`distantPast` for a full pass).
        package var floor: Date {
            if case .since(let floor) = self { return floor }
            return .distantPast
        }
    }

    /// The shortest time between full passes.
    let minimumInterval: Duration
    /// Full passes are at least this many times their own duration apart.
    let costFactor: Int
    /// How far before the last pass's `now()` the next one starts.
    let margin: Duration
    /// Where the next bounded pass starts; nil until a pass looked at everything up to its end.
    private(set) var floor: Date?
    /// When the last full pass started.
    private(set) var lastFullPass: ContinuousClock.Instant?
    /// How long after ``lastFullPass`` the next full pass is due.
    private(set) var fullPassInterval: Duration

    /// A cursor before the first pass (which is a full one).
    package init(minimumInterval: Duration = .seconds(60), costFactor: Int = 20, margin: Duration = .seconds(1)) {
        self.minimumInterval = minimumInterval
        self.costFactor = costFactor
        self.margin = margin
        self.fullPassInterval = minimumInterval
    }

    /// The next pass at `now`: full when none ran yet or a full pass is due, otherwise from
    /// ``floor``.
    package func nextPass(now: ContinuousClock.Instant) -> Pass {
        guard let floor, let lastFullPass, now - lastFullPass < fullPassInterval else { return .full }
        return .since(floor)
    }

    /// Records a pass run as `pass` from `started` to `finished` that reaped `reaped` of at
    /// most `limit` leases, with the server's `now()` `serverNow`.
    package mutating func record(_ pass: Pass, reaped: Int, limit: Int, serverNow: Date, started: ContinuousClock.Instant, finished: ContinuousClock.Instant) {
        if pass == .full {
            lastFullPass = started
            fullPassInterval = max(minimumInterval, (finished - started) * costFactor)
        }
        // Everything that expired before serverNow was looked at unless the limit cut it short.
        if reaped < limit {
            floor = serverNow.addingTimeInterval(-Double(Backoff.milliseconds(margin)) / 1000)
        }
    }
}
