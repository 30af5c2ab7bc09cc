import Foundation
import PostgresLocks

/// What a scheduler does about ticks that passed while no scheduler was running: every
/// instance was down, or leadership was changing hands when they fell due.
///
/// A tick counts as missed when it is later than the last tick enqueued and already past when
/// a scheduler next looks (see ``TickPlanner``). Ticks enqueued on time are never affected.
public enum MissedTickPolicy: Sendable, Hashable {
    /// Drops missed ticks: only the latest tick is enqueued, and only while it is at most the
    /// planner's lateness old, so a scheduler a few moments late still runs it. For jobs that
    /// only make sense on time (a reminder for the current minute).
    case skip
    /// Enqueues one job for all the missed ticks, the latest of them, however late. For jobs
    /// that catch up on everything at once (a sync, a cleanup).
    case runOnce
    /// Enqueues one job per missed tick, oldest first, for the latest `upTo` of them; older ones
    /// are dropped. For jobs that work per period (a report per hour). `upTo` must be in
    /// 1...``maximumBackfill``.
    case backfill(upTo: Int)

    /// The most ticks ``backfill(upTo:)`` may catch up on.
    public static let maximumBackfill = 1_000

    /// Checks the policy's parameters.
    ///
    /// - Throws: `PostgresLocksError` with code `invalidArgument` if a ``backfill(upTo:)``
    ///   count is outside 1...``maximumBackfill``.
    public func validate() throws {
        if case .backfill(let count) = self, !(1...Self.maximumBackfill).contains(count) {
            throw PostgresLocksError(
                code: .invalidArgument,
                message: "missed tick policy backfill(upTo: \(count)) must catch up on between 1 and \(Self.maximumBackfill) ticks"
            )
        }
    }
}
