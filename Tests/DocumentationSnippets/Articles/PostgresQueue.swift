// The Swift blocks of the DocC article PostgresQueue.md (the queue catalog's landing page).
import Logging
import PostgresLocks
import PostgresNIO
import PostgresQueue
import ServiceLifecycle

/// What the article's handler sends mail with.
protocol ArticleMailer: Sendable { func send<Message>(_ message: Message) async throws }

func articleQueue(
    client: PostgresClient, settings: ConnectionSettings, logger: Logger,
    receipt: any Encodable & Sendable, orderID: Int64, mailer: any ArticleMailer
) async throws {
    struct Email: Codable { var to: String; var subject: String }

    let queue = try JobQueue(schema: "jobs")
    try await queue.migrate(on: client, logger: logger)        // idempotent, safe at concurrent start-up

    // Enqueue: one, a batch (one statement), or inside your own transaction.
    try await queue.enqueue(try NewJob(kind: "send-email", payload: Email(to: "a@example.com", subject: "Hi")), on: client, logger: logger)
    try await client.withCheckedTransaction(logger: logger) { tx in
        try await tx.query("INSERT INTO orders …")
        try await queue.enqueue([try NewJob(kind: "send-email", payload: receipt, uniqueKey: "receipt:\(orderID)")], in: tx)
    }

    // Work: a swift-service-lifecycle Service.
    var handlers = JobHandlers()
    handlers.register("send-email") { (email: Email, context) in
        try await mailer.send(email)
    }
    let worker = try QueueWorker(queue: queue, client: client, handlers: handlers, configuration: .init(
        queue: "default", concurrency: 32,
        listen: settings   // wake-ups within milliseconds
    ), logger: logger)
    try await ServiceGroup(services: [client, worker], gracefulShutdownSignals: [.sigterm], logger: logger).run()
}
