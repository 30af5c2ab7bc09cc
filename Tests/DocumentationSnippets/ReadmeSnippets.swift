// The README's Swift blocks, each verbatim inside a function that declares what the block
// assumes (a client, a logger, the values it names). This target is compiled by every build;
// `DocumentationCodeTests` checks that every block of README.md appears here, so the README's code
// compiles as written.
import Foundation
import Logging
import NIOCore
import PostgresLocks
import PostgresNIO
import PostgresQueue
import ServiceLifecycle

// README block 1
func readmeVersionRace(client: PostgresClient, logger: Logger, tenantKey: Int64, tenant: String) async throws {
    try await client.withCheckedTransaction(logger: logger) { tx in
        try await tx.query("SELECT pg_advisory_xact_lock(\(tenantKey))")
        let next = try await tx.query("SELECT COALESCE(MAX(version), 0) + 1 FROM instructions WHERE target = \(tenant)")
            .rows[0].decode(Int.self)
        try await tx.query("INSERT INTO instructions (target, version) VALUES (\(tenant), \(next))")
    }
}

// README block 2
func readmeAdvisoryLocks(client: PostgresClient, logger: Logger, orderIDs: [Int32]) async throws {
    // Transaction-scoped: released by COMMIT/ROLLBACK, cannot leak into the pool.
    try await client.withAdvisoryLock(.hashed("invoice-series:acme"), wait: .timeout(.seconds(2)), logger: logger) { tx in
        /* … */
    }
    // Many keys: deduplicated, sorted into one global order, taken in one round trip, all or nothing.
    try await client.withAdvisoryLocks(orderIDs.map { LockRequest(.pair(namespace: 1, id: $0)) }, logger: logger) { tx in /* … */ }
    // Session-scoped, for long work: released (or the connection closed) before the connection
    // returns to the pool; the body is cancelled and `lockLost` thrown if the session dies.
    try await client.withSessionAdvisoryLock(.hashed("daily-report-job"), wait: .immediately, logger: logger) { /* … */ }
}

struct Report: Sendable { var rows = 0 }
func buildReport() async throws -> Report { Report() }

// README block 3
func readmePatterns(client: PostgresClient, logger: Logger, body: String, orderID: Int32) async throws {
    // Gapless numbers per scope (invoice series, document versions), allocated in your transaction.
    let versions = try GaplessCounter(table: "document_versions")          // default: one counter row per scope
    try await versions.withNextNumber(scope: "doc-42", on: client, logger: logger) { version, tx in
        try await tx.query("INSERT INTO history (doc, version, body) VALUES (42, \(version), \(body))")
    }
    // A job that runs on one instance at a time: the others get `lockTimeout` (or pass `wait:`).
    let report = try await client.runSingleton("nightly-report", logger: logger) { try await buildReport() }
    // Work serialized per entity (a namespace per kind), different entities in parallel.
    try await client.withAdvisoryLock(.pair(namespace: 1, id: orderID), logger: logger) { tx in /* … */ }
    // Typed row locks and a lock_timeout that ends with the transaction.
    try await client.withCheckedTransaction(logger: logger) { tx in
        try await tx.setLockTimeout(.milliseconds(500))
        try await tx.query("SELECT id FROM jobs WHERE … LIMIT 10 \(rowLock: try RowLock(.noKeyUpdate, of: ["jobs"], waiting: .skipLocked))")
    }
    _ = report
}

/// What the README's handlers send mail with (nothing here: the snippets are compiled, not run).
struct Mailer: Sendable {
    func sendWelcome(to userID: Int64) async throws {}
    func sendDigest(for day: Date) async throws {}
}

// README block 4
func readmeQueue(client: PostgresClient, logger: Logger, settings: ConnectionSettings, userID: Int64, mailer: Mailer) async throws {
    struct SendWelcome: JobDefinition { static let kind = "send-welcome"; var userID: Int64 }   // a typed job
    struct SendDigest: JobDefinition { static let kind = "send-digest"; var day: Date }
    struct Timing: JobMiddleware {                                       // middleware: around every job
        func run(_ job: ClaimedJob, context: JobContext, next: JobMiddlewareNext) async throws -> JobOutcome {
            let started = ContinuousClock.now
            defer { context.logger.info("job ran", metadata: ["duration": "\(ContinuousClock.now - started)"]) }
            return try await next(job, context)
        }
    }

    let queue = try JobQueue(schema: "jobs")
    try await queue.migrate(on: client, logger: logger)
    try await queue.enqueue(try NewJob(SendWelcome(userID: userID), uniqueKey: "welcome:\(userID)"), on: client, logger: logger)

    var handlers = JobHandlers()
    handlers.use(Timing())
    handlers.register(SendWelcome.self) { job, context in try await mailer.sendWelcome(to: job.userID) }
    handlers.register(SendDigest.self) { job, context in try await mailer.sendDigest(for: job.day) }
    let worker = try QueueWorker(queue: queue, client: client, handlers: handlers,
                                 configuration: .init(listen: settings), logger: logger)

    // At runtime, for every worker of every process: at most 5 welcome mails running at once.
    try await queue.setLimits(JobLimits(kind: SendWelcome.kind, maxRunning: 5), queue: "default", on: client, logger: logger)

    // A digest at 07:00 in Berlin, enqueued once per day by whichever instance leads the election.
    let election = try LeaderElection(configuration: .init(name: "scheduler", connection: settings), logger: logger)
    let scheduler = try JobScheduler(queue: queue, client: client, election: election, schedules: [
        try PeriodicJob(name: "daily-digest", schedule: .cron("0 7 * * *", timeZone: TimeZone(identifier: "Europe/Berlin")!)) { tick in
            try NewJob(SendDigest(day: tick))
        },
    ], logger: logger)
    // Graceful shutdown finishes running jobs, then gives their leases back.
    try await ServiceGroup(services: [client, election, scheduler, worker], gracefulShutdownSignals: [.sigterm], logger: logger).run()
}

// README block 5
func readmeEventLoopExecutor(eventLoop: any EventLoop, settings: ConnectionSettings, key: LockKey, logger: Logger) async throws {
    let connection = try await PostgresConnection.connect(on: eventLoop, configuration: settings.makeConnectionConfiguration(), id: 1, logger: logger)
    try await withTaskExecutorPreference(EventLoopTaskExecutor(connection.eventLoop)) {
        try await connection.withAdvisoryLock(key, logger: logger) { tx in /* … */ }
    }
    try await connection.close()
}
