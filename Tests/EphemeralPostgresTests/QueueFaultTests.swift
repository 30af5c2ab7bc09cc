import EphemeralPostgres
import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import PostgresQueue
import ServiceLifecycle
import Subprocess
import Testing
import PglockHarness
#if canImport(System)
import System
#else
import SystemPackage
#endif

private struct Payload: Codable, Sendable {
    var n: Int
}

@Suite("PostgresQueue faults", .serverSlot)
struct QueueFaultTests {
    @Test func aJobOfAWorkerKilledWithSIGKILLIsReclaimedAndCompletedOnceAndTheStaleLeaseIsRefused() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try JobQueue(schema: "q")
            try await queue.migrate(on: db.client, logger: db.logger)
            let id = try await queue.enqueue(try NewJob(kind: "hold", payloadJSON: "{}"), on: db.client, logger: db.logger).ids[0]
            // A separate worker process takes the job and holds it; then it is killed outright.
            _ = try await Subprocess.run(
                .path(FilePath(try pglockExecutable())),
                arguments: ["queue", "work", "--database-url", db.settings.redactedURL, "--schema", "q", "--lease", "1s"],
                input: .none, output: .sequence, error: .discarded
            ) { execution in
                let line = try await firstLine(of: execution.standardOutput)
                #expect(line == "holding \(id)")
                try execution.send(signal: .kill)
            }
            let staleToken = try await db.scalar("SELECT lease_token FROM q.all_jobs WHERE id = \(id)", as: UUID.self)
            #expect(try await db.scalar("SELECT state FROM q.all_jobs WHERE id = \(id)", as: String.self) == "running")

            // A worker in this process reclaims it once the lease has expired, and completes it.
            try await db.query("CREATE TABLE effects (job bigint NOT NULL)")
            var handlers = JobHandlers()
            handlers.register("hold") { (_: [String: String], context) in
                try await context.client.withCheckedTransaction(logger: context.logger) { tx in
                    try await tx.query("INSERT INTO effects VALUES (\(context.job.id))")
                    try await context.complete(in: tx)
                }
            }
            let worker = try QueueWorker(
                queue: queue, client: db.client, handlers: handlers,
                configuration: .init(queue: "default", lease: .seconds(5), pollInterval: .milliseconds(50), reapInterval: .milliseconds(100)),
                logger: db.logger
            )
            let group = ServiceGroup(services: [worker], gracefulShutdownSignals: [], cancellationSignals: [], logger: db.logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await waitUntil(timeout: .seconds(20), "the job is completed by the surviving worker") {
                    try await db.scalar("SELECT state FROM q.all_jobs WHERE id = \(id)", as: String.self) == "completed"
                }
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            #expect(try await db.scalar("SELECT count(*)::int FROM effects", as: Int.self) == 1)
            #expect(try await db.scalar("SELECT attempt FROM q.all_jobs WHERE id = \(id)", as: Int32.self) == 2)
            // The killed worker's late completion (its old token) is refused.
            let stale = JobLease(id: id, token: staleToken)
            #expect(try await queue.complete([stale], on: db.client, logger: db.logger) == [stale])
            #expect(try await db.scalar("SELECT count(*)::int FROM q.all_jobs WHERE state <> 'completed'", as: Int.self) == 0)
        }
    }

    @Test func workersReconnectAfterAServerRestartAndNoJobIsLost() async throws {
        // A server of its own: this test stops it.
        let server = try await EphemeralPostgres.start(EphemeralPostgres.Configuration(disableDurability: false), logger: TestDatabase.logger)
        defer { Task { await server.shutdown() } }
        let settings = try ConnectionSettings(url: server.url())
        var configuration = try settings.makeClientConfiguration()
        configuration.options.maximumConnections = 20
        configuration.options.minimumConnections = 0  // opened on demand, as before the default fixed pool
        let client = PostgresClient(configuration: configuration, backgroundLogger: TestDatabase.backgroundLogger)
        let logger = TestDatabase.logger
        try await withThrowingTaskGroup(of: Void.self) { clientTask in
            clientTask.addTask { await client.run() }
            let queue = try JobQueue(schema: "q")
            try await queue.migrate(on: client, logger: logger)
            try await client.checkedQuery("CREATE TABLE effects (job bigint PRIMARY KEY, n int NOT NULL)", logger: logger)
            var handlers = JobHandlers()
            handlers.register("work") { (payload: Payload, context) in
                try await context.client.withCheckedTransaction(logger: context.logger) { tx in
                    try await tx.query("INSERT INTO effects VALUES (\(context.job.id), \(payload.n))")
                    try await context.complete(in: tx)
                }
            }
            let workers = try (0..<4).map { _ in
                try QueueWorker(queue: queue, client: client, handlers: handlers, configuration: .init(
                    queue: "default", concurrency: 4, lease: .seconds(2), pollInterval: .milliseconds(50), reapInterval: .milliseconds(200),
                    backoff: Backoff(initial: .milliseconds(50), maximum: .milliseconds(200)),
                    listen: settings
                ), logger: logger)
            }
            let group = ServiceGroup(services: workers, gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await queue.enqueue((0..<500).map { try NewJob(kind: "work", payload: Payload(n: $0)) }, on: client, logger: logger)
                try await waitUntil(timeout: .seconds(30), "some jobs are done") {
                    try await client.checkedQuery("SELECT count(*)::int FROM effects", logger: logger).rows[0].decode(Int.self) > 50
                }
                try await server.stopServer(immediate: true)
                try await server.startServer()
                try await queue.enqueue((500..<1000).map { try NewJob(kind: "work", payload: Payload(n: $0)) }, on: client, logger: logger)
                try await waitUntil(timeout: .seconds(60), "every job is completed after the restart") {
                    let done = try? await client.checkedQuery("SELECT count(*)::int FROM q.all_jobs WHERE state = 'completed'", logger: logger).rows[0].decode(Int.self)
                    return done == 1000
                }
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            let effects = try await client.checkedQuery("SELECT count(*)::int, count(DISTINCT n)::int FROM effects", logger: logger).rows[0].decode((Int, Int).self)
            #expect(effects.0 == 1000 && effects.1 == 1000)
            clientTask.cancelAll()
        }
    }
}
