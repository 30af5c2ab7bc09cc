import Foundation

/// Where a worker's next claim starts, as a pure value (see ``QueueWorker``).
///
/// Why it exists: a claim walks the `jobs_available` index in claim order (priority, run time,
/// id), and every claimed job leaves the index entry of its old row version at the front of
/// that order. Index scans normally mark such entries dead once no snapshot can see the old
/// version, and later scans skip them; while one old snapshot is held (a long report, a
/// forgotten `REPEATABLE READ` transaction) none can be marked, and a claim from the front
/// visits every job claimed since that snapshot began: the longer it is held, the slower each
/// claim. So a worker remembers the claim-order place of the last job it claimed
/// (``position``) and normally claims only after it, skipping that dead front.
///
/// Jobs can appear before the cursor: a higher priority enqueued later, a run time in the
/// past, an enqueuing transaction that committed after later ones, a job skipped while another
/// claim held it. A full scan (from the front) finds them, once the last full scan is
/// ``fullScanInterval`` old: the next claim is then a full one, and a bounded claim that comes
/// back short (nothing more after the cursor) is followed at once by a full one. The interval
/// is ``costFactor`` (20) times the last full scan's duration, at least ``minimumInterval``, so
/// full scans take about a twentieth of the claim loop's time at most: an old snapshot delays
/// the jobs that sort before the cursor (by about 20 × a full scan) rather than slowing the
/// drain, and without one (a full scan then costs what a bounded one does) full scans come
/// often. (With a factor of 10, a 60 s drain under a held snapshot ran about 5% slower than
/// with 20; with no periodic full scan at all, no faster than with 20.)
package struct ClaimCursor: Equatable, Sendable {
    /// A job's place in claim order: `(priority, run_at, id)`, compared as the claim sorts.
    package struct Position: Sendable, Hashable, Comparable, CustomStringConvertible {
        /// The job's priority (lower runs first).
        package var priority: Int16
        /// When it was due.
        package var runAt: Date
        /// Its id.
        package var id: Int64

        package static func < (lhs: Position, rhs: Position) -> Bool {
            (lhs.priority, lhs.runAt, lhs.id) < (rhs.priority, rhs.runAt, rhs.id)
        }

        package var description: String { "(\(priority), \(runAt), \(id))" }
    }

    /// How to run the next claim.
    enum Scan: Equatable, Sendable {
        /// From the front of claim order.
        case full
        /// Only jobs after this place.
        case after(Position)

        /// The lower bound to claim after, nil for a full scan.
        var bound: Position? {
            if case .after(let position) = self { return position }
            return nil
        }
    }

    /// The shortest time between full scans.
    let minimumInterval: Duration
    /// Full scans are at least this many times their own duration apart.
    let costFactor: Int
    /// The place of the last job claimed, in claim order; nil before the first claim.
    private(set) var position: Position?
    /// When the last full scan started.
    private(set) var lastFullScan: ContinuousClock.Instant?
    /// How long after ``lastFullScan`` the next full scan is due.
    private(set) var fullScanInterval: Duration

    /// A cursor before the first claim (which is a full scan).
    init(minimumInterval: Duration = .milliseconds(100), costFactor: Int = 20) {
        self.minimumInterval = minimumInterval
        self.costFactor = costFactor
        self.fullScanInterval = minimumInterval
    }

    /// Whether a full scan is due at `now`.
    func fullScanDue(at now: ContinuousClock.Instant) -> Bool {
        guard let lastFullScan else { return true }
        return now - lastFullScan >= fullScanInterval
    }

    /// The next claim at `now`: full when no job was claimed yet or a full scan is due,
    /// otherwise after ``position``.
    func nextClaim(now: ContinuousClock.Instant) -> Scan {
        guard let position, !fullScanDue(at: now) else { return .full }
        return .after(position)
    }

    /// Records a claim of `asked` jobs run as `scan` from `started` to `finished`, which got
    /// the jobs at `claimed`.
    ///
    /// - Returns: whether to claim again at once (a full scan): a bounded claim came back
    ///   short, so jobs may be waiting only before the cursor, and a full scan is due.
    mutating func record(_ scan: Scan, asked: Int, claimed: [Position], started: ContinuousClock.Instant, finished: ContinuousClock.Instant) -> Bool {
        // The claim takes jobs in claim order from its starting point: the next one starts
        // after the last it got (after a full scan, that may be before the previous position).
        if let last = claimed.max() { position = last }
        switch scan {
        case .full:
            lastFullScan = started
            fullScanInterval = max(minimumInterval, (finished - started) * costFactor)
            return false
        case .after:
            return claimed.count < asked && fullScanDue(at: finished)
        }
    }
}

extension ClaimedJob {
    /// The job's place in claim order.
    var claimPosition: ClaimCursor.Position {
        ClaimCursor.Position(priority: priority, runAt: runAt, id: id)
    }
}
