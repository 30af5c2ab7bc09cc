import Logging
import PostgresLocks
import PostgresNIO

/// A job queue in PostgreSQL tables: enqueue, claim with `SKIP LOCKED`, leases with fencing,
/// retries with backoff, and admin operations. Workers are ``QueueWorker`` services.
///
/// ```swift
/// let queue = try JobQueue(schema: "jobs")
/// try await queue.migrate(on: client, logger: logger)
/// try await queue.enqueue(NewJob(kind: "send-email", payload: Email(to: "a@example.com")), on: client, logger: logger)
/// ```
///
/// Every transition after a claim is **fenced** by the claim's lease token: a worker whose
/// lease expired and was reclaimed cannot complete, fail or extend the job any more.
public struct JobQueue: Sendable {
    /// The schema holding the queue's tables.
    public let schema: SQLIdentifier
    /// The jobs table.
    public let jobsTable: QualifiedName
    /// The migrations table.
    public let migrationsTable: QualifiedName
    /// The `LISTEN`/`NOTIFY` channel workers wake on (`<schema>_jobs`).
    public let channel: SQLIdentifier
    /// At most one `NOTIFY` per queue per this interval from one process.
    public let notifyDebounce: Duration
    let debouncer: SharedNotifyDebouncer
    /// The claim statement's text for this queue's table (see `claimSQL(jobsTable:)`).
    package let claimSQL: String

    /// A queue whose tables live in `schema` (created by ``migrate(on:logger:)``).
    ///
    /// - Throws: `PostgresLocksError.Code.invalidArgument` for a schema name
    ///   that is not a plain identifier (the channel name `<schema>_jobs` must be one too).
    public init(schema: String = "pglocks_queue", notifyDebounce: Duration = .milliseconds(2)) throws {
        let schema = try SQLIdentifier(schema)
        self.schema = schema
        self.jobsTable = QualifiedName(schema: schema, name: try SQLIdentifier("jobs"))
        self.migrationsTable = QualifiedName(schema: schema, name: try SQLIdentifier("migrations"))
        self.claimSQL = Self.claimSQL(jobsTable: jobsTable)
        self.channel = try SQLIdentifier("\(schema.name)_jobs")
        guard notifyDebounce >= .zero else {
            throw PostgresLocksError(code: .invalidArgument, message: "notifyDebounce must not be negative")
        }
        self.notifyDebounce = notifyDebounce
        self.debouncer = SharedNotifyDebouncer(interval: notifyDebounce)
    }
}
