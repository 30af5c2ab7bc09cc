import EphemeralPostgres
import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import PostgresQueue
import Testing

/// Session features behind a real PgBouncer while things move under it: the server restarts
/// behind a session pooler, or a transaction pooler takes the place of a session pooler at
/// the same address (as a failover can put a new endpoint behind an unchanged URL). Each test
/// has a server of its own: restarting the shared one would break the tests beside it.
@Suite("Through PgBouncer while the server restarts", .serverSlot, .enabled(if: TestPgBouncer.isAvailable, "needs pgbouncer and the throwaway server"))
struct PoolerRestartTests {
    private static let serverConfiguration = EphemeralPostgres.Configuration(settings: ["fsync": "off"])

    /// Runs `body` with a running client through `pooler`.
    private static func withClient<T: Sendable>(
        _ pooler: EphemeralPgBouncer, poolSize: Int = 4,
        _ body: @Sendable (PostgresClient, ConnectionSettings) async throws -> T
    ) async throws -> T {
        let settings = try ConnectionSettings(url: pooler.url())
        let client = PostgresClient(configuration: try settings.makeClientConfiguration(poolSize: poolSize), backgroundLogger: TestDatabase.backgroundLogger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client, settings)
        }
    }

    @Test func aSessionLockBehindASessionPoolerIsLostWhenTheServerRestartsAndWorksAgainAfter() async throws {
        let logger = TestDatabase.logger
        try await EphemeralPostgres.withServer(Self.serverConfiguration, logger: logger) { server in
            try await EphemeralPgBouncer.withPooler(in: server, poolMode: .session, logger: logger) { pooler in
                try await Self.withClient(pooler) { client, _ in
                    let key = LockKey.hashed("shard:7")
                    let holding = Signal()
                    let holder = Task {
                        try await client.withSessionAdvisoryLock(key, heartbeat: .milliseconds(200), logger: logger) {
                            holding.fire()
                            // Runs until the library cancels it: the lock cannot outlive its session.
                            try await suspendUntilCancelled()
                        }
                    }
                    await holding.wait()
                    try await server.stopServer(immediate: true)
                    try await server.startServer()

                    let outcome = try await withinTimeLimit(.seconds(30), "the holder notices its lost session") { await holder.result }
                    guard case .failure(let error) = outcome else {
                        Issue.record("the body outlived its session lock")
                        return
                    }
                    let code = (error as? PostgresLocksError)?.code
                    #expect(code == .lockLost || code == .connectionLost, "found \(error)")

                    // After the restart the pooler reconnects, and session locks exclude again.
                    try await waitUntil(timeout: .seconds(30), pollEvery: .milliseconds(100), "a session lock is taken through the pooler again") {
                        (try? await client.withSessionAdvisoryLock(key, wait: .immediately, logger: logger) {}) != nil
                    }
                    let again = Signal()
                    let release = Signal()
                    async let second: Void = client.withSessionAdvisoryLock(key, logger: logger) {
                        again.fire()
                        await release.wait()
                    }
                    await again.wait()
                    await #expect {
                        try await client.withSessionAdvisoryLock(key, wait: .immediately, logger: logger) {}
                    } throws: { ($0 as? PostgresLocksError)?.code == .lockTimeout }
                    release.fire()
                    try await second
                }
            }
        }
    }

    @Test func aTransactionPoolerBehindTheSameURLIsStillRefusedAfterTheServerRestarts() async throws {
        let logger = TestDatabase.logger
        try await EphemeralPostgres.withServer(Self.serverConfiguration, logger: logger) { server in
            try await EphemeralPgBouncer.withPooler(in: server, poolMode: .transaction, logger: logger) { pooler in
                try await Self.withClient(pooler) { client, _ in
                    let ran = Signal()
                    for round in ["before", "after"] {
                        if round == "after" {
                            try await server.stopServer(immediate: true)
                            try await server.startServer()
                        }
                        let error = await #expect(throws: PostgresLocksError.self, "\(round) the restart") {
                            try await client.withSessionAdvisoryLock(.hashed("job:y"), wait: .immediately, logger: logger) { ran.fire() }
                        }
                        // Right after a restart the pool may first hand out a connection the
                        // server closed; the lock is refused either way, and never taken.
                        #expect(error?.code == .transactionPooling || (round == "after" && error?.code == .connectionLost), "found \(String(describing: error))")
                    }
                    try await waitUntil(timeout: .seconds(30), pollEvery: .milliseconds(100), "the lock is refused for the pooler, not a dead connection") {
                        do {
                            try await client.withSessionAdvisoryLock(.hashed("job:y"), wait: .immediately, logger: logger) { ran.fire() }
                            return true
                        } catch let error as PostgresLocksError {
                            return error.code == .transactionPooling
                        }
                    }
                    #expect(!ran.hasFired, "a body ran without its session lock")
                }
            }
        }
    }

    @Test func aQueueWorkerStopsListeningWhenItsListenURLStartsLeadingToATransactionPooler() async throws {
        let logger = TestDatabase.logger
        let messages = LockedBox<[String]>([])
        var workerLogger = Logger(label: "worker") { _ in CapturingLogHandler(messages: messages) }
        workerLogger.logLevel = .debug
        try await EphemeralPostgres.withServer(Self.serverConfiguration, logger: logger) { server in
            let port = try EphemeralPostgres.freeLoopbackPort()
            let direct = try ConnectionSettings(url: server.url())
            let client = PostgresClient(configuration: try direct.makeClientConfiguration(poolSize: 4), backgroundLogger: TestDatabase.backgroundLogger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                let queue = try JobQueue(schema: "jobs")
                try await queue.migrate(on: client, logger: logger)
                let done = LockedBox(0)
                var handlers = JobHandlers()
                handlers.register("work") { (_: Int, _) in done.withLock { $0 += 1 } }

                // The worker LISTENs through a session pooler at `port`...
                var session = EphemeralPgBouncer.Configuration(port: port)
                session.poolSize = 4
                let first = try await EphemeralPgBouncer.start(in: server, poolMode: .session, configuration: session, logger: logger)
                let listenSettings = try ConnectionSettings(url: first.url())
                let worker = try QueueWorker(queue: queue, client: client, handlers: handlers, configuration: .init(
                    pollInterval: .milliseconds(200),
                    listen: listenSettings
                ), logger: workerLogger)
                let running = Task { try await worker.run() }
                defer { running.cancel() }
                try await waitUntil(timeout: .seconds(30), "the worker listens through the session pooler") {
                    try await Self.listeners(on: client, logger: logger) == 1
                }
                #expect(!messages.value.contains { $0.contains("cannot LISTEN") })

                // ...then a transaction pooler takes its place at the same address.
                await first.shutdown()
                var transaction = session
                transaction.poolSize = 4
                let second = try await EphemeralPgBouncer.start(in: server, poolMode: .transaction, configuration: transaction, logger: logger)
                defer { Task { await second.shutdown() } }
                do {
                    try await waitUntil(timeout: .seconds(30), "the worker notices the transaction pooler when it reconnects") {
                        messages.value.contains { $0.contains("cannot LISTEN through a transaction-pooling proxy") }
                    }
                } catch {
                    print("the worker logged:\n" + messages.value.joined(separator: "\n"))
                    throw error
                }
                #expect(try await Self.listeners(on: client, logger: logger) == 0)

                // It goes on by polling.
                for index in 0..<5 {
                    try await queue.enqueue(try NewJob(kind: "work", payload: index), on: client, logger: logger)
                }
                try await waitUntil(timeout: .seconds(30), "the worker completes jobs by polling") { done.value == 5 }
                running.cancel()
                _ = await running.result
            }
        }
    }

    @Test func anElectionWhoseURLStartsLeadingToATransactionPoolerStopsWithTheTypedError() async throws {
        let logger = TestDatabase.logger
        try await EphemeralPostgres.withServer(Self.serverConfiguration, logger: logger) { server in
            let port = try EphemeralPostgres.freeLoopbackPort()
            var session = EphemeralPgBouncer.Configuration(port: port)
            session.poolSize = 4
            let first = try await EphemeralPgBouncer.start(in: server, poolMode: .session, configuration: session, logger: logger)
            var configuration = LeaderElection.Configuration(name: "moving", connection: try ConnectionSettings(url: first.url()))
            configuration.heartbeatInterval = .milliseconds(100)
            configuration.reconnectDelay = .milliseconds(20)
            configuration.maximumReconnectDelay = .milliseconds(200)
            let election = try LeaderElection(configuration: configuration, logger: logger)
            let running = Task { try await election.run() }
            defer { running.cancel() }
            try await waitUntil(timeout: .seconds(30), "the election leads through the session pooler") { election.isLeader }

            // A transaction pooler takes the session pooler's place at the same address.
            await first.shutdown()
            let second = try await EphemeralPgBouncer.start(in: server, poolMode: .transaction, configuration: session, logger: logger)
            defer { Task { await second.shutdown() } }
            let outcome = try await withinTimeLimit(.seconds(30), "the election stops") { await running.result }
            guard case .failure(let error) = outcome else {
                Issue.record("the election went on through a transaction pooler")
                return
            }
            #expect((error as? PostgresLocksError)?.code == .transactionPooling, "found \(error)")
            #expect(!election.isLeader)
        }
    }

    /// Server sessions that hold a `LISTEN`.
    private static func listeners(on client: PostgresClient, logger: Logger) async throws -> Int {
        try await pooledQuery("SELECT count(*)::int FROM pg_stat_activity WHERE query LIKE 'LISTEN%'", on: client, logger: logger)[0].decode(Int.self)
    }
}

/// A signal fired once, awaited by others.
private final class Signal: Sendable {
    private let stream = AsyncStream<Void>.makeStream()
    private let fired = LockedBox(false)
    func fire() {
        fired.withLock { $0 = true }
        stream.continuation.finish()
    }
    func wait() async { for await _ in stream.stream {} }
    var hasFired: Bool { fired.value }
}
