import Foundation
import PostgresLocks

/// A job enqueued on a schedule: once per tick across every instance, by the leader of a
/// ``JobScheduler``'s election.
///
/// ```swift
/// let nightly = try PeriodicJob(
///     name: "nightly-invoices",
///     schedule: .cron("0 2 * * *", timeZone: TimeZone(identifier: "Europe/Berlin")!),
///     missedTicks: .runOnce
/// ) { tick in
///     try NewJob(CloseInvoices(day: tick))
/// }
/// ```
public struct PeriodicJob: Sendable {
    /// The schedule's name: unique among the scheduler's schedules, stored with each tick.
    public let name: String
    /// When it fires.
    public let schedule: PeriodicSchedule
    /// What happens to ticks that passed while no leader was enqueuing.
    public let missedTicks: MissedTickPolicy
    /// How late a tick may still be enqueued under ``MissedTickPolicy/skip`` (and for a
    /// schedule's very first tick).
    public let lateness: Duration
    /// Makes the job for a tick (the tick's instant is passed in).
    public let makeJob: @Sendable (Date) throws -> NewJob

    /// A schedule whose job is made per tick by `makeJob`.
    ///
    /// - Throws: `PostgresLocksError.Code.invalidArgument` for an empty or over-long name, a
    ///   bad missed-tick policy, or a negative lateness.
    public init(
        name: String,
        schedule: PeriodicSchedule,
        missedTicks: MissedTickPolicy = .runOnce,
        lateness: Duration = .seconds(60),
        makeJob: @escaping @Sendable (Date) throws -> NewJob
    ) throws {
        try NewJob.validateName(name, what: "schedule name")
        try missedTicks.validate()
        try PostgresLocksError.require(lateness >= .zero, "the lateness of schedule \(name) must not be negative; found \(lateness)")
        self.name = name
        self.schedule = schedule
        self.missedTicks = missedTicks
        self.lateness = lateness
        self.makeJob = makeJob
    }

    /// A schedule that enqueues a copy of `job` on every tick.
    public init(name: String, schedule: PeriodicSchedule, missedTicks: MissedTickPolicy = .runOnce, lateness: Duration = .seconds(60), job: NewJob) throws {
        try self.init(name: name, schedule: schedule, missedTicks: missedTicks, lateness: lateness) { _ in job }
    }

    /// The planner for this schedule.
    var planner: TickPlanner { TickPlanner(schedule: schedule, policy: missedTicks, lateness: lateness) }

    /// The job for `tick`, marked with the schedule and the tick in its metadata.
    func job(for tick: Date) throws -> NewJob {
        var job = try makeJob(tick)
        job.metadata["pglocks.schedule"] = name
        job.metadata["pglocks.tick"] = Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(tick)
        return job
    }
}
