import Foundation
import Logging
import PostgresLocks
import PostgresNIO

extension JobQueue {
    /// The most jobs one enqueue call inserts (one statement; split bigger batches).
    public static let maximumBatchSize = 50_000

    /// Enqueues one job (autocommit) and wakes idle workers.
    @discardableResult
    public func enqueue(_ job: NewJob, on client: PostgresClient, logger: Logger) async throws -> EnqueueResult {
        try await enqueue([job], on: client, logger: logger)
    }

    /// Enqueues a batch in **one statement** (autocommit) and wakes idle workers with one
    /// `NOTIFY` per queue, debounced. With tracing, the call is a `pglocks.enqueue` span whose
    /// context each job carries in its metadata, so its run continues the trace.
    ///
    /// The ids are returned once the server has committed the statement. If the connection is
    /// lost first, the call throws `connectionLost` and the jobs may or may not exist: enqueue
    /// with a `uniqueKey` (a repeat is then a no-op) or ``enqueue(_:in:)-([NewJob],_)`` inside a transaction
    /// whose commit outcome you resolve when a job must exist exactly once.
    @discardableResult
    public func enqueue(_ jobs: [NewJob], on client: PostgresClient, logger: Logger) async throws -> EnqueueResult {
        try await tracedEnqueue(jobs, inserted: \.ids.count) { jobs in
            let statement = try enqueueStatement(jobs)
            let result = try Self.decodeEnqueue(try await client.checkedQuery(statement, logger: logger).rows, jobs: jobs)
            await notifyEnqueued(jobs, result: result)
            return result
        }
    }

    /// Enqueues inside the caller's transaction: the jobs exist only if it commits, and the
    /// wake-up is delivered at the commit (a `NOTIFY` in a transaction is sent when it commits).
    /// Traced as ``enqueue(_:on:logger:)-([NewJob],_,_)`` is.
    @discardableResult
    public func enqueue(_ jobs: [NewJob], in transaction: Transaction) async throws -> EnqueueResult {
        try await tracedEnqueue(jobs, inserted: \.ids.count) { jobs in
            let statement = try enqueueStatement(jobs)
            let result = try Self.decodeEnqueue(try await transaction.query(statement).rows, jobs: jobs)
            await notifyEnqueued(jobs, result: result)
            return result
        }
    }

    /// Tells the observers what was inserted (inside a transaction: what will exist if it commits).
    func notifyEnqueued(_ jobs: [NewJob], result: EnqueueResult) async {
        guard !observers.isEmpty, !jobs.isEmpty else { return }
        for observer in observers { await observer.jobsEnqueued(jobs, result: result) }
    }

    /// Enqueues one job inside the caller's transaction.
    @discardableResult
    public func enqueue(_ job: NewJob, in transaction: Transaction) async throws -> EnqueueResult {
        try await enqueue([job], in: transaction)
    }

    func enqueueStatement(_ jobs: [NewJob]) throws -> PostgresQuery {
        guard !jobs.isEmpty else { throw PostgresLocksError(code: .invalidArgument, message: "no jobs to enqueue") }
        try PostgresLocksError.require(jobs.count <= Self.maximumBatchSize, "\(jobs.count) jobs in one enqueue; at most \(Self.maximumBatchSize): split the batch")
        var queues: [String] = [], kinds: [String] = [], payloads: [String] = [], priorities: [Int16] = []
        var delays: [Double] = [], instants: [Double] = [], maxAttempts: [Int32] = [], uniqueKeys: [String] = []
        var uniqueStates: [String] = [], tags: [String] = [], metadata: [String] = []
        queues.reserveCapacity(jobs.count)
        for job in jobs {
            queues.append(job.queue); kinds.append(job.kind); payloads.append(job.payloadJSON)
            priorities.append(job.priority); maxAttempts.append(job.maxAttempts); uniqueKeys.append(job.uniqueKey ?? "")
            uniqueStates.append(job.uniqueStates.map(\.rawValue).joined(separator: ","))
            tags.append(JobMetadata.encodeTags(job.tags))
            metadata.append(JobMetadata.encode(job.metadata))
            switch job.schedule {
            case .now: delays.append(0); instants.append(.nan)
            case .after(let delay): delays.append(Double(Backoff.milliseconds(delay)) / 1000); instants.append(.nan)
            case .at(let date): delays.append(0); instants.append(date.timeIntervalSince1970)
            }
        }
        let notifyQueues = Array(Set(queues)).filter { debouncer.shouldNotify(queue: $0) }
        return """
            WITH input AS (
                SELECT * FROM unnest(\(queues)::text[], \(kinds)::text[], \(payloads)::text[], \(priorities)::int2[],
                                     \(delays)::float8[], \(instants)::float8[], \(maxAttempts)::int4[], \(uniqueKeys)::text[],
                                     \(uniqueStates)::text[], \(tags)::text[], \(metadata)::text[])
                       WITH ORDINALITY AS t(queue, kind, payload, priority, delay_s, at_epoch, max_attempts, unique_key,
                                            unique_states, tags, metadata, ord)
            ), inserted AS (
                INSERT INTO \(identifier: jobsTable) (queue, kind, payload, priority, run_at, max_attempts, unique_key, unique_states, tags, metadata)
                SELECT queue, kind, payload::jsonb, priority,
                       CASE WHEN at_epoch = 'NaN' THEN now() + delay_s * interval '1 second' ELSE to_timestamp(at_epoch) END,
                       max_attempts, NULLIF(unique_key, ''),
                       CASE WHEN unique_key = '' THEN NULL ELSE string_to_array(unique_states, ',') END,
                       CASE WHEN tags = '' THEN '{}'::text[] ELSE ARRAY(SELECT jsonb_array_elements_text(tags::jsonb)) END,
                       CASE WHEN metadata = '' THEN '{}'::jsonb ELSE metadata::jsonb END
                FROM input ORDER BY ord
                ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT NULL AND state = ANY(unique_states) DO NOTHING
                RETURNING id, queue, unique_key
            ), notified AS (
                SELECT pg_notify(\(channel.name), q) FROM unnest(\(notifyQueues)::text[]) AS q
                WHERE EXISTS (SELECT 1 FROM inserted i WHERE i.queue = q)
            )
            SELECT id, COALESCE(unique_key, ''), (SELECT count(*) FROM notified) FROM inserted ORDER BY id
            """
    }

    static func decodeEnqueue(_ rows: [PostgresRow], jobs: [NewJob]) throws -> EnqueueResult {
        var ids: [Int64] = []
        ids.reserveCapacity(rows.count)
        var insertedKeys = Set<String>()
        for row in rows {
            let (id, key, _) = try row.decode((Int64, String, Int64).self)
            ids.append(id)
            if !key.isEmpty { insertedKeys.insert(key) }
        }
        var skipped: [String] = []
        var seen = Set<String>()
        for job in jobs {
            guard let key = job.uniqueKey else { continue }
            // The first job of a key was inserted if its key came back; later ones were skipped.
            if insertedKeys.contains(key) && !seen.contains(key) { seen.insert(key) } else { skipped.append(key) }
        }
        return EnqueueResult(ids: ids, skippedUniqueKeys: skipped)
    }
}
