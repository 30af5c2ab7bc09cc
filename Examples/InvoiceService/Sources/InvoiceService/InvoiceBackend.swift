import Hummingbird
import Logging
import PostgresLocks
import PostgresNIO
import PostgresQueue
import ServiceLifecycle

/// The service's parts wired together: a `PostgresClient`, the per-tenant gapless counter, the
/// invoice store, the job queue with its `send-invoice` worker, and the HTTP routes.
/// ``makeApplication(configuration:)`` returns the Hummingbird application that runs them all.
struct InvoiceBackend: Sendable {
    /// Where the database is.
    let settings: ConnectionSettings
    /// The connection pool every part shares.
    let client: PostgresClient
    /// One gapless invoice series per tenant (table `invoice_numbers`).
    let counter: GaplessCounter
    /// The `invoices` table.
    let store: InvoiceStore
    /// The job queue (schema `invoice_queue`).
    let queue: JobQueue
    /// Creates the tables once, before the server and the worker start.
    let setup: DatabaseSetup
    let logger: Logger

    /// Connections the service keeps open: the HTTP handlers' transactions and the worker's
    /// 8 concurrent jobs share them. Every instance of the service holds this many.
    static let poolSize = 12

    /// The parts for the database at `settings`. Nothing is connected until the application runs.
    init(settings: ConnectionSettings, logger: Logger) throws {
        self.settings = settings
        self.logger = logger
        // The recommended pool (no keep-alive queries, 2 s idle timeout): PostgresNIO's default
        // pool keeps memory for every request it serves (see the PoolConfiguration article).
        // Warns once if someone changes it into a pool that grows.
        let configuration = try settings.makeClientConfiguration(poolSize: Self.poolSize)
        configuration.warnIfMemoryGrows(logger: logger)
        client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        counter = try GaplessCounter(table: "invoice_numbers")
        store = try InvoiceStore(table: "invoices")
        queue = try JobQueue(schema: "invoice_queue")
        setup = DatabaseSetup(client: client, queue: queue, counter: counter, store: store, logger: logger)
    }

    /// The worker for `send-invoice` jobs, woken by `LISTEN` on a dedicated connection.
    func makeWorker() throws -> QueueWorker {
        var handlers = JobHandlers()
        SendInvoiceJob.register(in: &handlers, store: store)
        let configuration = QueueWorker.Configuration(
            queue: SendInvoiceJob.queueName,
            concurrency: 8,
            listen: settings
        )
        return try QueueWorker(queue: queue, client: client, handlers: handlers, configuration: configuration, logger: logger)
    }

    /// The HTTP application. Its services are the `PostgresClient` and the worker (which waits
    /// for the database setup); the server itself starts after the setup too. Hummingbird runs
    /// them in its service group in this order and shuts them down in reverse: the server
    /// stops taking requests first, then the worker finishes or gives back its jobs, and the
    /// client closes last.
    func makeApplication(configuration: ApplicationConfiguration = ApplicationConfiguration()) throws -> some ApplicationProtocol {
        let router = Router()
        router.middlewares.add(LogRequestsMiddleware(.info))
        InvoiceRoutes(client: client, counter: counter, queue: queue, store: store).add(to: router)
        let worker = AfterDatabaseSetup(setup: setup, wrapped: try makeWorker())
        var app = Application(router: router, configuration: configuration, services: [client, worker], logger: logger)
        let setup = self.setup
        app.beforeServerStarts { try await setup.ensure() }
        return app
    }
}
