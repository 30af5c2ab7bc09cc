// The Swift blocks of the DocC article ElectingALeader.md.
import Logging
import PostgresLocks
import PostgresNIO
import PostgresQueue
import ServiceLifecycle

struct ArticleScheduler: Sendable {
    func start(fencedBy token: FencingToken) {}
    func stop() {}
}
func runDueJobs(at due: ContinuousClock.Instant, fencedBy token: FencingToken) async throws {}

/// The application's own timetable in the article (none here: the snippet is compiled, not run).
struct Timetable: Sendable {
    func dueTimes() -> AsyncStream<ContinuousClock.Instant> { AsyncStream { $0.finish() } }
}

func articleElection(client: PostgresClient, settings: ConnectionSettings, scheduler: ArticleScheduler, logger: Logger) async throws {
    var configuration = LeaderElection.Configuration(name: "billing-scheduler", connection: settings)
    configuration.heartbeatInterval = .seconds(1)
    let election = try LeaderElection(configuration: configuration, logger: logger)

    let group = ServiceGroup(services: [client, election], gracefulShutdownSignals: [.sigterm], logger: logger)
    async let services: Void = group.run()

    for await change in election.leadershipChanges() {
        switch change {
        case .leader(let token): scheduler.start(fencedBy: token)
        case .follower: scheduler.stop()
        }
    }
    try await services   // the changes end when the election stops
}

func articleFencedWrite(client: PostgresClient, token: FencingToken, id: Int64, logger: Logger) async throws {
    try await client.withCheckedTransaction(logger: logger) { tx in
        try await tx.requireCurrentTerm(token)      // throws .fenced once another instance leads
        try await tx.query("UPDATE invoices SET sent_at = now() WHERE id = \(id)")
    }
}

func articleWhileLeading(client: PostgresClient, election: LeaderElection, timetable: Timetable, worker: QueueWorker, logger: Logger) {
    struct Scheduler: Service {
        let election: LeaderElection
        let timetable: Timetable   // yours: yields each moment jobs fall due
        func run() async throws {
            try await election.whileLeading { token in
                for await due in timetable.dueTimes() {
                    try await runDueJobs(at: due, fencedBy: token)
                }
            }
        }
    }
    let group = ServiceGroup(services: [client, election, Scheduler(election: election, timetable: timetable), worker],
                             gracefulShutdownSignals: [.sigterm], logger: logger)
    _ = group
}
