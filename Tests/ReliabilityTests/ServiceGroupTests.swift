import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import PostgresQueue
import EphemeralPostgres
import ServiceLifecycle
import Testing

/// The library's services in one `ServiceGroup`, as an application runs them: a change of
/// leader is routine, so it must not fail the group (which would cancel every other service).
@Suite("Services in one group")
struct ServiceGroupTests {
    /// A scheduler built as the election's documentation shows: work while leading.
    struct Scheduler: Service {
        let election: LeaderElection
        let terms: LockedBox<[Int64]>

        func run() async throws {
            try await election.whileLeading { token in
                terms.withLock { $0.append(token.term) }
                // Works until its term ends, which cancels it.
                try await suspendUntilCancelled()
            }
        }
    }

    @Test func aKilledLeaderLeavesEveryOtherServiceRunning() async throws {
        try await TestDatabase.withDatabase { db in
            var configuration = LeaderElection.Configuration(name: "scheduler", connection: db.settings)
            configuration.heartbeatInterval = .milliseconds(100)
            configuration.retryInterval = .seconds(1)
            configuration.reconnectDelay = .milliseconds(20)
            configuration.maximumReconnectDelay = .milliseconds(200)
            let election = try LeaderElection(configuration: configuration, logger: db.logger)
            let terms = LockedBox<[Int64]>([])

            let queue = try JobQueue(schema: "jobs")
            try await queue.migrate(on: db.client, logger: db.logger)
            let done = LockedBox(0)
            var handlers = JobHandlers()
            handlers.register("work") { (_: Int, _) in done.withLock { $0 += 1 } }
            let worker = try QueueWorker(
                queue: queue, client: db.client, handlers: handlers,
                configuration: .init(pollInterval: .milliseconds(50)), logger: db.logger
            )

            // The group's defaults: a service that throws or returns cancels all the others.
            let group = ServiceGroup(configuration: .init(
                services: [.init(service: election), .init(service: Scheduler(election: election, terms: terms)), .init(service: worker)],
                logger: db.logger
            ))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await waitUntil(timeout: .seconds(30), "the scheduler works in a first term") { terms.value.count == 1 }

                let pid = try #require(election.sessionBackendPID)
                try await db.query("SELECT pg_terminate_backend(\(pid))")
                try await waitUntil(timeout: .seconds(30), "the scheduler works again in a later term") { terms.value.count == 2 }
                #expect(terms.value[1] > terms.value[0])

                // The worker was never cancelled: it still completes jobs.
                try await queue.enqueue(try NewJob(kind: "work", payload: 1), on: db.client, logger: db.logger)
                try await waitUntil(timeout: .seconds(30), "the worker completes a job after the leader was killed") { done.value == 1 }

                await group.triggerGracefulShutdown()
                try await tasks.next()  // the group ends without an error
            }
            #expect(!election.isLeader)
        }
    }

    @Test(.serverSlot) func whileLeadingLeadsAgainAfterTheServerRestarts() async throws {
        // A server of its own: this test stops it. The election reconnects on its backoff while
        // nothing answers, campaigns again, and the work resumes in a later term.
        let logger = TestDatabase.logger
        try await EphemeralPostgres.withServer(.init(disableDurability: false), logger: logger) { server in
            var configuration = LeaderElection.Configuration(name: "scheduler", connection: try ConnectionSettings(url: server.url()))
            configuration.heartbeatInterval = .milliseconds(100)
            configuration.retryInterval = .seconds(1)
            configuration.reconnectDelay = .milliseconds(20)
            configuration.maximumReconnectDelay = .milliseconds(500)
            let election = try LeaderElection(configuration: configuration, logger: logger)
            let terms = LockedBox<[Int64]>([])
            let group = ServiceGroup(configuration: .init(
                services: [.init(service: election), .init(service: Scheduler(election: election, terms: terms))],
                logger: logger
            ))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await waitUntil("the scheduler works in a first term") { terms.value.count == 1 }

                try await server.stopServer(immediate: true)
                try await waitUntil("the leader learns its session is gone") { !election.isLeader }
                try await server.startServer()
                try await waitUntil("the scheduler works again in a later term") { terms.value.count == 2 }
                #expect(terms.value[1] > terms.value[0])

                await group.triggerGracefulShutdown()
                try await tasks.next()  // the group ends without an error
            }
            #expect(!election.isLeader)
        }
    }
}
