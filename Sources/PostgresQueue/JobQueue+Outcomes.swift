import Foundation
import Logging
import PostgresLocks
import PostgresNIO

extension JobQueue {
    /// Marks jobs completed, in one statement. Only jobs whose lease is still held are
    /// completed; the rest (reclaimed or cancelled meanwhile) are returned as refused.
    ///
    /// - Returns: the leases that were refused by the fencing check.
    public func complete(_ leases: [JobLease], on client: PostgresClient, logger: Logger) async throws -> [JobLease] {
        try await complete(leases, outputs: [], on: client, logger: logger)
    }

    /// Marks jobs completed with their outputs (JSON text; `""` for none), in one statement.
    func complete(_ leases: [JobLease], outputs: [String], on client: PostgresClient, logger: Logger) async throws -> [JobLease] {
        guard !leases.isEmpty else { return [] }
        let ids = leases.map(\.id), tokens = leases.map(\.token)
        let outputs = outputs.isEmpty ? Array(repeating: "", count: leases.count) : outputs
        let done = Set(try await client.checkedQuery(completeStatement(ids: ids, tokens: tokens, outputs: outputs), logger: logger).rows.map { try $0.decode(Int64.self) })
        return leases.filter { !done.contains($0.id) }
    }

    /// Completes one job inside the caller's transaction, so the job's own writes and its
    /// completion commit together (or neither).
    ///
    /// - Throws: ``PostgresQueueError/Code/leaseLost`` if the lease is no longer held.
    public func complete(_ lease: JobLease, outputJSON: String? = nil, in transaction: Transaction) async throws {
        let rows = try await transaction.query(completeStatement(ids: [lease.id], tokens: [lease.token], outputs: [outputJSON ?? ""])).rows
        guard !rows.isEmpty else { throw Self.leaseLostError(lease) }
    }

    /// Records a failed attempt: the job runs again after `retryAfter` (see `Backoff`), or is
    /// dead if that was its last attempt (of `maxAttempts` when given, else its own) or
    /// `discard` is set. Fenced by the lease.
    public func fail(
        _ lease: JobLease,
        error: String,
        retryAfter: Duration,
        discard: Bool = false,
        maxAttempts: Int32? = nil,
        on client: PostgresClient,
        logger: Logger
    ) async throws -> FailureOutcome {
        let delaySeconds = Double(Backoff.milliseconds(retryAfter)) / 1000
        let message = String(error.prefix(4000))
        let rows = try await client.checkedQuery("""
            UPDATE \(identifier: jobsTable)
            SET state = CASE WHEN attempt >= COALESCE(\(maxAttempts)::int4, max_attempts) OR \(discard) THEN 'dead' ELSE 'available' END,
                run_at = CASE WHEN attempt >= COALESCE(\(maxAttempts)::int4, max_attempts) OR \(discard) THEN run_at ELSE now() + \(delaySeconds) * interval '1 second' END,
                finished_at = CASE WHEN attempt >= COALESCE(\(maxAttempts)::int4, max_attempts) OR \(discard) THEN now() END,
                last_error = \(message), lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
            WHERE id = \(lease.id) AND lease_token = \(lease.token)
            RETURNING state, run_at
            """, logger: logger).rows
        guard let row = rows.first else { return .leaseLost }
        let (state, runAt) = try row.decode((String, Date).self)
        return state == JobState.dead.rawValue ? .dead : .retryScheduled(at: runAt)
    }

    /// Snoozes a running job: it becomes available again after `delay`, and this run is not
    /// counted as an attempt. Fenced by the lease.
    ///
    /// - Returns: when it runs again, or `nil` if the lease was no longer held.
    @discardableResult
    public func snooze(_ lease: JobLease, for delay: Duration, on client: PostgresClient, logger: Logger) async throws -> Date? {
        let delaySeconds = Double(Backoff.milliseconds(delay)) / 1000
        let rows = try await client.checkedQuery("""
            UPDATE \(identifier: jobsTable)
            SET state = 'available', attempt = GREATEST(attempt - 1, 0), snoozes = snoozes + 1,
                run_at = now() + \(delaySeconds) * interval '1 second',
                lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
            WHERE id = \(lease.id) AND lease_token = \(lease.token)
            RETURNING run_at
            """, logger: logger).rows
        return try rows.first?.decode(Date.self)
    }

    /// Cancels a running job from its own worker (a handler's ``JobOutcome/cancel(reason:)``),
    /// recording `reason`. Fenced by the lease.
    ///
    /// - Returns: whether the job was cancelled (false: the lease was no longer held).
    @discardableResult
    public func cancel(_ lease: JobLease, reason: String, on client: PostgresClient, logger: Logger) async throws -> Bool {
        let message = String(reason.prefix(4000))
        return try await !client.checkedQuery("""
            UPDATE \(identifier: jobsTable)
            SET state = 'cancelled', finished_at = now(), last_error = \(message),
                lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
            WHERE id = \(lease.id) AND lease_token = \(lease.token)
            RETURNING id
            """, logger: logger).rows.isEmpty
    }

    /// Pushes the leases of running jobs forward by `lease` from now (the heartbeat).
    ///
    /// - Returns: the leases that are no longer held (reclaimed or cancelled): their work
    ///   should stop.
    public func extendLeases(_ leases: [JobLease], by lease: Duration, on client: PostgresClient, logger: Logger) async throws -> [JobLease] {
        guard !leases.isEmpty else { return [] }
        let milliseconds = try Self.leaseMilliseconds(lease)
        let ids = leases.map(\.id), tokens = leases.map(\.token)
        let held = Set(try await client.checkedQuery("""
            UPDATE \(identifier: jobsTable) j
            SET lease_expires_at = now() + \(milliseconds) * interval '1 millisecond'
            FROM unnest(\(ids)::int8[], \(tokens)::uuid[]) AS t(id, token)
            WHERE j.id = ANY(\(ids)::int8[]) AND j.id = t.id AND j.lease_token = t.token
            RETURNING j.id
            """, logger: logger).rows.map { try $0.decode(Int64.self) })
        return leases.filter { !held.contains($0.id) }
    }

    /// Gives running jobs back unfinished (graceful shutdown): they become available at once
    /// and the attempt is not counted.
    public func giveBack(_ leases: [JobLease], on client: PostgresClient, logger: Logger) async throws {
        guard !leases.isEmpty else { return }
        let ids = leases.map(\.id), tokens = leases.map(\.token)
        try await client.checkedQuery("""
            UPDATE \(identifier: jobsTable) j
            SET state = 'available', attempt = GREATEST(j.attempt - 1, 0), run_at = now(),
                lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
            FROM unnest(\(ids)::int8[], \(tokens)::uuid[]) AS t(id, token)
            WHERE j.id = ANY(\(ids)::int8[]) AND j.id = t.id AND j.lease_token = t.token
            """, logger: logger)
    }

    /// ``completeSQL`` with its values bound.
    func completeStatement(ids: [Int64], tokens: [UUID], outputs: [String]) -> PostgresQuery {
        var binds = PostgresBindings(capacity: 3)
        binds.append(ids)
        binds.append(tokens)
        binds.append(outputs)
        return PostgresQuery(unsafeSQL: completeSQL, binds: binds)
    }

    /// The completion statement's text, with `$1` job ids (`int8[]`), `$2` their lease tokens
    /// (`uuid[]`) and `$3` their outputs (`text[]` of JSON, `''` for none); it returns the ids
    /// it completed. Built once per queue (``JobQueue/completeSQL``).
    ///
    /// Only a job whose lease token still matches is completed (the fencing check; a token is
    /// set only while its job runs, a constraint of the jobs table). The jobs are found by
    /// primary key (`id = ANY($1)`). No statement after a claim names `state = 'running'`:
    /// that would let the planner walk the whole `jobs_running_lease` index instead, which it
    /// believes small, but which keeps an entry for every job that ever ran while an old
    /// snapshot is held, so such a plan grows slower with every job completed.
    ///
    /// A completed job leaves the jobs table in the same statement: it is deleted there and
    /// inserted into ``JobQueue/completedTable``, so the table that claims scan holds only
    /// live work (and no completion writes a new row version or index entry into it). The
    /// exception is a job whose unique key also covers the completed state
    /// (``UniqueOptions/states``): it stays in the jobs table, completed, where the unique index
    /// keeps blocking its key until retention prunes it.
    static func completeSQL(jobs: QualifiedName, completed: QualifiedName) -> String {
        let keepsKey = "(j.unique_key IS NOT NULL AND COALESCE('completed' = ANY(j.unique_states), false))"
        return """
            WITH t AS (
                SELECT * FROM unnest($1::int8[], $2::uuid[], $3::text[]) AS t(id, token, output)
            ), moved AS (
                DELETE FROM \(jobs.quoted) j USING t
                WHERE j.id = ANY($1::int8[]) AND j.id = t.id AND j.lease_token = t.token AND NOT \(keepsKey)
                RETURNING j.*, t.output AS new_output
            ), kept AS (
                UPDATE \(jobs.quoted) j
                SET state = 'completed', finished_at = now(), lease_token = NULL, lease_expires_at = NULL,
                    output = CASE WHEN t.output = '' THEN NULL ELSE t.output::jsonb END
                FROM t
                WHERE j.id = ANY($1::int8[]) AND j.id = t.id AND j.lease_token = t.token AND \(keepsKey)
                RETURNING j.id
            ), stored AS (
                INSERT INTO \(completed.quoted) (\(jobColumns))
                SELECT id, queue, kind, payload, priority, run_at, 'completed', attempt, max_attempts,
                       lease_owner, NULL, NULL, last_error, unique_key, created_at, attempted_at, now(),
                       tags, metadata, CASE WHEN new_output = '' THEN NULL ELSE new_output::jsonb END,
                       unique_states, snoozes
                FROM moved
                RETURNING id
            )
            SELECT id FROM stored UNION ALL SELECT id FROM kept
            """
    }

    /// Every column of the jobs table (and of the completed table, created alike), in order.
    static let jobColumns = """
        id, queue, kind, payload, priority, run_at, state, attempt, max_attempts, \
        lease_owner, lease_token, lease_expires_at, last_error, unique_key, created_at, attempted_at, finished_at, \
        tags, metadata, output, unique_states, snoozes
        """

    static func leaseLostError(_ lease: JobLease) -> PostgresQueueError {
        PostgresQueueError(
            code: .leaseLost,
            message: "job \(lease.id): the lease \(lease.token) is no longer held (reclaimed after it expired, or the job was cancelled); its outcome was not recorded"
        )
    }
}
