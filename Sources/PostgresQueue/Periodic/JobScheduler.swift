import Foundation
import Logging
import PostgresLocks
import PostgresNIO
import ServiceLifecycle

/// A swift-service-lifecycle `Service` that enqueues periodic jobs: every instance runs one,
/// and only the leader of `election` enqueues. Each tick is written once, under the leader's
/// fencing term and the unique key (schedule, tick), so it is enqueued exactly once across
/// instances and changes of leader: a deposed leader's write is refused, and a new leader
/// finds the ticks already written.
///
/// ```swift
/// let election = try LeaderElection(configuration: .init(name: "scheduler", connection: settings), logger: logger)
/// let scheduler = try JobScheduler(queue: queue, client: client, election: election, schedules: [
///     try PeriodicJob(name: "cleanup", schedule: .every(.seconds(300)), job: try NewJob(kind: "cleanup")),
/// ], logger: logger)
/// let group = ServiceGroup(services: [client, election, scheduler, worker], gracefulShutdownSignals: [.sigterm], logger: logger)
/// ```
///
/// A new leader reads each schedule's last tick and applies its ``MissedTickPolicy`` to the
/// ticks that passed meanwhile. Ticks are read from the leader's clock.
public final class JobScheduler: Service, Sendable {
    /// The queue the jobs go to.
    public let queue: JobQueue
    /// The client for the scheduler's writes.
    public let client: PostgresClient
    /// The election whose leader enqueues (run it in the same `ServiceGroup`).
    public let election: LeaderElection
    /// The schedules.
    public let schedules: [PeriodicJob]
    /// How long tick records are kept (each schedule's newest is always kept).
    public let tickRetention: Duration
    let logger: Logger
    private let started = SetOnceFlag()

    /// A scheduler of `schedules`; nothing is sent until ``run()``.
    ///
    /// - Throws: `PostgresLocksError.Code.invalidArgument` for no schedules, two with one name,
    ///   or a tick retention under a minute.
    public init(
        queue: JobQueue,
        client: PostgresClient,
        election: LeaderElection,
        schedules: [PeriodicJob],
        tickRetention: Duration = .seconds(7 * 24 * 3600),
        logger: Logger
    ) throws {
        try PostgresLocksError.require(!schedules.isEmpty, "the scheduler has no schedules")
        var names = Set<String>()
        for schedule in schedules where !names.insert(schedule.name).inserted {
            throw PostgresLocksError(code: .invalidArgument, message: "two schedules are named \(schedule.name)")
        }
        try PostgresLocksError.require(tickRetention >= .seconds(60), "tickRetention must be at least a minute; found \(tickRetention)")
        self.queue = queue
        self.client = client
        self.election = election
        self.schedules = schedules
        self.tickRetention = tickRetention
        self.logger = logger.with("election", election.configuration.name)
    }

    /// Enqueues ticks whenever this instance leads, until graceful shutdown or cancellation.
    ///
    /// - Throws: `PostgresLocksError.Code.invalidArgument` if `run()` is called a second time.
    public func run() async throws {
        try PostgresLocksError.require(started.setIfClear(), "run() was already called on this JobScheduler; create a new one to run again")
        try await election.whileLeading { token in
            try await self.lead(token)
        }
    }

    /// One term: record the schedules, then enqueue each tick as it comes due. A failed write
    /// (a lost connection, a restarting server) is retried after a pause with backoff; a
    /// fenced one ends the term's work (another instance leads now).
    private func lead(_ token: FencingToken) async throws {
        logger.info("leading: enqueuing periodic jobs", metadata: ["term": "\(token.term)", "schedules": "\(schedules.count)"])
        var reconnects = ReconnectSchedule(backoff: Backoff(initial: .milliseconds(100), maximum: .seconds(5)))
        var lastTicks: [String: Date]?
        var recordedNext: [String: Date] = [:]
        var lastPrune: ContinuousClock.Instant?
        while !Task.isCancelled {
            let wait: Duration
            do {
                if lastTicks == nil { lastTicks = try await queue.recordSchedules(schedules, token: token, on: client, logger: logger) }
                var earliest: Date?
                for schedule in schedules {
                    let plan = schedule.planner.plan(lastTick: lastTicks?[schedule.name], now: Date())
                    for tick in plan.due {
                        let id = try await queue.enqueueTick(tick, of: schedule, next: plan.next, token: token, on: client, logger: logger)
                        lastTicks?[schedule.name] = tick
                        recordedNext[schedule.name] = plan.next
                        logger.debug("tick enqueued", metadata: [
                            "schedule": "\(schedule.name)", "tick": "\(tick)", "job": "\(id.map(String.init) ?? "already enqueued")",
                        ])
                    }
                    if let next = plan.next {
                        if recordedNext[schedule.name] != next {
                            try await queue.recordNextTick(next, of: schedule, token: token, on: client, logger: logger)
                            recordedNext[schedule.name] = next
                        }
                        earliest = min(earliest ?? next, next)
                    }
                }
                if lastPrune.map({ ContinuousClock.now - $0 > .seconds(3600) }) ?? true {
                    try await queue.pruneTicks(olderThan: tickRetention, on: client, logger: logger)
                    lastPrune = .now
                }
                _ = reconnects.pauseAfterSession(healthy: true)
                // Until the next tick (at most a minute, so a wall-clock jump is noticed soon).
                let seconds = min(max((earliest ?? Date().addingTimeInterval(60)).timeIntervalSinceNow, 0.001), 60)
                wait = .milliseconds(Int64((seconds * 1000).rounded(.up)))
            } catch let error as PostgresLocksError where error.code == .fenced || error.code == .lockLost {
                throw error
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                wait = reconnects.pauseAfterSession(healthy: false)
                logger.warning("could not enqueue periodic jobs; trying again", metadata: ["error": .error(error), "pause": "\(wait)"])
            }
            try await Task.sleep(for: wait)
        }
    }
}
