import Foundation
import PostgresLocks

/// Decides which ticks of a periodic schedule to enqueue now: a pure value, no clock, no I/O.
///
/// Only ticks `t` with `t <= now` and `t > lastTick` are considered; which of them are due
/// depends on the ``MissedTickPolicy``:
///
/// - No `lastTick` (the schedule is seen for the first time): nothing is backfilled, whatever
///   the policy. The latest tick at or before `now` is due if it is at most `lateness` old, so
///   a scheduler that starts a few milliseconds after a tick still enqueues it.
/// - ``MissedTickPolicy/skip``: the latest tick, if it is at most `lateness` old.
/// - ``MissedTickPolicy/runOnce``: the latest tick, however old.
/// - ``MissedTickPolicy/backfill(upTo:)``: the latest `upTo` ticks, oldest first.
///
/// The planner walks back from `now`, at most `upTo` ticks, never forward from `lastTick`, so
/// planning stays cheap when `lastTick` is years ago on an every-second schedule.
public struct TickPlanner: Sendable {
    /// When ticks fall due.
    public let schedule: PeriodicSchedule
    /// What to do about ticks missed while no scheduler ran. An invalid ``MissedTickPolicy/backfill(upTo:)``
    /// count is clamped to 1...``MissedTickPolicy/maximumBackfill``; check it earlier with
    /// ``MissedTickPolicy/validate()``.
    public let policy: MissedTickPolicy
    /// How old a tick may be and still count as on time (for ``MissedTickPolicy/skip`` and a
    /// first sighting); a tick exactly this old is still on time.
    public let lateness: Duration

    /// Creates a planner.
    public init(schedule: PeriodicSchedule, policy: MissedTickPolicy, lateness: Duration = .seconds(60)) {
        self.schedule = schedule
        self.policy = policy
        self.lateness = lateness
    }

    /// The ticks to enqueue at `now`, given the last tick enqueued (nil if none ever was).
    public func plan(lastTick: Date?, now: Date) -> TickPlan {
        let next = schedule.nextTick(after: now)
        guard let latest = schedule.previousTick(atOrBefore: now), lastTick.map({ latest > $0 }) ?? true else {
            return TickPlan(due: [], next: next)
        }
        let (seconds, attoseconds) = lateness.components
        let isOnTime = now.timeIntervalSince(latest) <= Double(seconds) + Double(attoseconds) * 1e-18
        guard let lastTick else { return TickPlan(due: isOnTime ? [latest] : [], next: next) }
        switch policy {
        case .skip:
            return TickPlan(due: isOnTime ? [latest] : [], next: next)
        case .runOnce:
            return TickPlan(due: [latest], next: next)
        case .backfill(let count):
            let limit = min(max(count, 1), MissedTickPolicy.maximumBackfill)
            var due = [latest]
            while due.count < limit, let earlier = schedule.previousTick(before: due[due.count - 1]), earlier > lastTick {
                due.append(earlier)
            }
            return TickPlan(due: due.reversed(), next: next)
        }
    }
}
