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
        guard !leases.isEmpty else { return [] }
        let ids = leases.map(\.id), tokens = leases.map(\.token)
        let done = Set(try await client.checkedQuery("""
            UPDATE \(identifier: jobsTable) j
            SET state = 'completed', finished_at = now(), lease_token = NULL, lease_expires_at = NULL
            FROM unnest(\(ids)::int8[], \(tokens)::uuid[]) AS t(id, token)
            WHERE j.id = t.id AND j.lease_token = t.token AND j.state = 'running'
            RETURNING j.id
            """, logger: logger).rows.map { try $0.decode(Int64.self) })
        return leases.filter { !done.contains($0.id) }
    }

    /// Completes one job inside the caller's transaction, so the job's own writes and its
    /// completion commit together (or neither).
    ///
    /// - Throws: ``PostgresQueueError/Code/leaseLost`` if the lease is no longer held.
    public func complete(_ lease: JobLease, in transaction: Transaction) async throws {
        let rows = try await transaction.query("""
            UPDATE \(identifier: jobsTable)
            SET state = 'completed', finished_at = now(), lease_token = NULL, lease_expires_at = NULL
            WHERE id = \(lease.id) AND lease_token = \(lease.token) AND state = 'running'
            RETURNING id
            """).rows
        guard !rows.isEmpty else { throw Self.leaseLostError(lease) }
    }

    /// Records a failed attempt: the job runs again after `retryAfter` (see `Backoff`), or is
    /// dead if that was its last attempt or `discard` is set. Fenced by the lease.
    public func fail(
        _ lease: JobLease,
        error: String,
        retryAfter: Duration,
        discard: Bool = false,
        on client: PostgresClient,
        logger: Logger
    ) async throws -> FailureOutcome {
        let delaySeconds = Double(Backoff.milliseconds(retryAfter)) / 1000
        let message = String(error.prefix(4000))
        let rows = try await client.checkedQuery("""
            UPDATE \(identifier: jobsTable)
            SET state = CASE WHEN attempt >= max_attempts OR \(discard) THEN 'dead' ELSE 'available' END,
                run_at = CASE WHEN attempt >= max_attempts OR \(discard) THEN run_at ELSE now() + \(delaySeconds) * interval '1 second' END,
                finished_at = CASE WHEN attempt >= max_attempts OR \(discard) THEN now() END,
                last_error = \(message), lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
            WHERE id = \(lease.id) AND lease_token = \(lease.token) AND state = 'running'
            RETURNING state, run_at
            """, logger: logger).rows
        guard let row = rows.first else { return .leaseLost }
        let (state, runAt) = try row.decode((String, Date).self)
        return state == JobState.dead.rawValue ? .dead : .retryScheduled(at: runAt)
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
            WHERE j.id = t.id AND j.lease_token = t.token AND j.state = 'running'
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
            WHERE j.id = t.id AND j.lease_token = t.token AND j.state = 'running'
            """, logger: logger)
    }

    static func leaseLostError(_ lease: JobLease) -> PostgresQueueError {
        PostgresQueueError(
            code: .leaseLost,
            message: "job \(lease.id): the lease \(lease.token) is no longer held (reclaimed after it expired, or the job was cancelled); its outcome was not recorded"
        )
    }
}
