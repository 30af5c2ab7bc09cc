import Fluent
import FluentPostgresDriver
import PostgresLocks
import PostgresLocksVapor
import PostgresQueue
import Vapor

/// Configures the service on the server `settings` name (`DATABASE_URL` by default).
///
/// One `PostgresClient` serves the library and Fluent: `app.postgresLocks.use(url:)` makes it
/// (the library's recommended pool) and runs it at once, so migrations can use it before the
/// application boots; Fluent runs on it with `.postgres(client:)`. The queue worker, the
/// leader election and the scheduler run in the application's lifecycle: they start when it
/// boots to serve and stop gracefully, before the client, when it shuts down.
func configure(_ app: Application, settings: ConnectionSettings? = nil) async throws {
    let settings = try settings ?? ConnectionSettings.fromEnvironment(ProcessInfo.processInfo.environment)
    let client = try app.postgresLocks.use(settings: settings, poolSize: 12)
    app.databases.use(.postgres(client: client, logger: app.logger), as: .psql)

    let library = try Library()
    app.library = library
    app.migrations.add(CreateLibraryTables(library: library, client: client))
    app.migrations.add(CreateDocument())

    // Each request is a span; the library's spans (numbers, locks, transactions, jobs) are
    // its children. Driver errors (a unique index) answer as HTTP statuses, never with SQL.
    app.middleware.use(TracingMiddleware())
    app.middleware.use(PostgresErrorMiddleware())
    try app.register(collection: DocumentController())

    let worker = try QueueWorker(
        queue: library.queue, client: client, handlers: .vaporService(library),
        configuration: QueueWorker.Configuration(concurrency: 8, listen: settings), logger: app.logger
    )
    try app.postgresLocks.run(worker)
    let election = try LeaderElection(
        configuration: LeaderElection.Configuration(name: "vapor-service-scheduler", connection: settings), logger: app.logger
    )
    let scheduler = try JobScheduler(
        queue: library.queue, client: client, election: election,
        schedules: [try PeriodicJob(name: "digest", schedule: .every(.seconds(60)), job: try NewJob(Digest()))],
        logger: app.logger
    )
    try app.postgresLocks.run(election)
    try app.postgresLocks.run(scheduler)
}
