import Foundation

/// A periodic schedule as the scheduler's leader last recorded it.
public struct ScheduleSummary: Sendable, Hashable, Codable {
    /// The schedule's name.
    public var name: String
    /// Its schedule, as text (`cron "0 2 * * *" Europe/Berlin`, `every 30s`).
    public var schedule: String
    /// The queue its jobs go to.
    public var queue: String
    /// The kind of its jobs.
    public var kind: String
    /// Its missed-tick policy, as text.
    public var missedTicks: String
    /// The last tick enqueued.
    public var lastTick: Date?
    /// The next tick due.
    public var nextTick: Date?
    /// The job of the last tick.
    public var lastJobID: Int64?
    /// The leader's term that enqueued the last tick.
    public var term: Int64?
    /// When the leader last wrote this row.
    public var updatedAt: Date
}
