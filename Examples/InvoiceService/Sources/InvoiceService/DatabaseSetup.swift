import Logging
import PostgresLocks
import PostgresNIO
import PostgresQueue
import Synchronization

/// Creates what the service needs in the database, once per process: the queue's tables
/// (`JobQueue.migrate`), the gapless counter's table and the `invoices` table. The HTTP server
/// and the queue worker both wait for it before they start; whichever asks first runs it and
/// the other awaits the same outcome. Safe when several instances start at once.
final class DatabaseSetup: Sendable {
    private let client: PostgresClient
    private let queue: JobQueue
    private let counter: GaplessCounter
    private let store: InvoiceStore
    private let logger: Logger
    private let task = Mutex<Task<Void, any Error>?>(nil)

    /// A setup of `queue`, `counter` and `store` through `client` (which must be running by
    /// the time ``ensure()`` is called).
    init(client: PostgresClient, queue: JobQueue, counter: GaplessCounter, store: InvoiceStore, logger: Logger) {
        self.client = client
        self.queue = queue
        self.counter = counter
        self.store = store
        self.logger = logger
    }

    /// Runs the setup if no one has yet, and waits for it to finish (or rethrows its error).
    func ensure() async throws {
        let setup = task.withLock { task in
            if let task { return task }
            let started = Task { try await self.perform() }
            task = started
            return started
        }
        try await withTaskCancellationHandler {
            try await setup.value
        } onCancel: {
            setup.cancel()
        }
    }

    private func perform() async throws {
        try await queue.migrate(on: client, logger: logger)
        try await counter.migrate(on: client, logger: logger)
        try await client.withCheckedTransaction(logger: logger) { tx in
            // Concurrent CREATE TABLE IF NOT EXISTS can collide in the catalog: serialize.
            try await tx.advisoryLock(.hashed("invoice-service.create:\(store.table.unquotedText)"))
            try await store.createTable(in: tx)
        }
        logger.info("database ready", metadata: ["invoices": "\(store.table)", "counter": "\(counter.table)", "queue": "\(queue.schema)"])
    }
}
