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
    /// Completed jobs, moved out of ``jobsTable`` by the completing statement (except those
    /// whose unique key covers the completed state). Retention prunes it.
    public let completedTable: QualifiedName
    /// Every job, live or completed: ``jobsTable`` and ``completedTable`` as one view.
    public let allJobsView: QualifiedName
    /// The migrations table.
    public let migrationsTable: QualifiedName
    /// Per-queue control: paused, concurrency, whether limits apply.
    public let queuesTable: QualifiedName
    /// Fleet-wide limits per queue and kind.
    public let limitsTable: QualifiedName
    /// Start times of rate-limited jobs (a sliding window).
    public let startsTable: QualifiedName
    /// Periodic schedules with their last and next ticks.
    public let schedulesTable: QualifiedName
    /// Every periodic tick enqueued, keyed by schedule and tick.
    public let ticksTable: QualifiedName
    /// The `LISTEN`/`NOTIFY` channel for control messages (`<schema>_control`): pause,
    /// resume, settings changed, cancel a running job.
    public let controlChannel: SQLIdentifier
    /// Told of every job's life: enqueued, started, completed, failed, dead.
    public let observers: [any JobLifecycleObserver]
    /// The `LISTEN`/`NOTIFY` channel workers wake on (`<schema>_jobs`).
    public let channel: SQLIdentifier
    /// At most one `NOTIFY` per queue per this interval from one process.
    public let notifyDebounce: Duration
    let debouncer: SharedNotifyDebouncer
    /// The claim statement's text for this queue's table (see `claimSQL(jobsTable:)`).
    package let claimSQL: String
    /// The claim statement that takes only jobs after a claim-order place (see `claimSQL(jobsTable:queuesTable:bounded:)`).
    package let boundedClaimSQL: String
    /// The completion statement (see `completeSQL(jobs:completed:)`).
    package let completeSQL: String
    /// The claim statement for a queue under fleet-wide limits (see `limitedClaimSQL(_:)`).
    package let limitedClaimSQL: String

    /// A queue whose tables live in `schema` (created by ``migrate(on:logger:)``).
    ///
    /// - Throws: `PostgresLocksError.Code.invalidArgument` for a schema name
    ///   that is not a plain identifier (the channel name `<schema>_jobs` must be one too).
    public init(
        schema: String = "pglocks_queue",
        notifyDebounce: Duration = .milliseconds(2),
        observers: [any JobLifecycleObserver] = []
    ) throws {
        let schema = try SQLIdentifier(schema)
        func table(_ name: String) throws -> QualifiedName { QualifiedName(schema: schema, name: try SQLIdentifier(name)) }
        self.schema = schema
        self.jobsTable = try table(Self.jobsTableName)
        self.completedTable = try table("completed_jobs")
        self.allJobsView = try table("all_jobs")
        self.migrationsTable = try table(Self.migrationsTableName)
        self.queuesTable = try table("queues")
        self.limitsTable = try table("limits")
        self.startsTable = try table("starts")
        self.schedulesTable = try table("schedules")
        self.ticksTable = try table("ticks")
        self.channel = try SQLIdentifier("\(schema.name)_jobs")
        self.controlChannel = try SQLIdentifier("\(schema.name)_control")
        self.observers = observers
        self.claimSQL = Self.claimSQL(jobsTable: jobsTable, queuesTable: queuesTable)
        self.boundedClaimSQL = Self.claimSQL(jobsTable: jobsTable, queuesTable: queuesTable, bounded: true)
        self.completeSQL = Self.completeSQL(jobs: jobsTable, completed: completedTable)
        self.limitedClaimSQL = Self.limitedClaimSQL(jobs: jobsTable, queues: queuesTable, limits: limitsTable, starts: startsTable)
        try PostgresLocksError.require(notifyDebounce >= .zero, "notifyDebounce must not be negative")
        self.notifyDebounce = notifyDebounce
        self.debouncer = SharedNotifyDebouncer(interval: notifyDebounce)
    }
}
