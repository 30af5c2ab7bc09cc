import Foundation
import PostgresLocks

/// What a ``TickPlanner`` decided: the ticks to enqueue now, and when to look again.
public struct TickPlan: Sendable, Equatable {
    /// The ticks to enqueue now, oldest first; empty when none is due.
    public var due: [Date]
    /// The first tick after now: when to plan again. Nil if the schedule never ticks again.
    public var next: Date?

    /// Creates a plan.
    public init(due: [Date], next: Date?) {
        self.due = due
        self.next = next
    }
}
