import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import PostgresQueue
import Testing

/// A live scenario for the console: a queue schema with a job in each state (the dead one's
/// payload and error carry `<script>`), and one advisory lock held with two sessions queued
/// behind it.
struct ConsoleScenario: Sendable {
    static let schema = "console_jobs"
    static let lockName = "console:invoice-7"
    static let payloadScript = "<script>window.pwned = 1</script>"
    static let errorScript = "<script>window.pwnedError = 1</script><img src=x onerror=\"window.pwnedImage=1\">"

    let queue: JobQueue
    var jobs: [JobState: Int64] = [:]

    /// Creates the queue and its jobs.
    static func jobs(on db: TestContext) async throws -> ConsoleScenario {
        let queue = try JobQueue(schema: schema)
        try await queue.migrate(on: db.client, logger: db.logger)
        var scenario = ConsoleScenario(queue: queue)
        for state in JobState.allCases {
            let payload = state == .dead ? #"{"note": "\#(payloadScript)", "invoice": 7}"# : #"{"invoice": 1}"#
            let result = try await queue.enqueue(NewJob(kind: "send-invoice", payloadJSON: payload, queue: "billing"), on: db.client, logger: db.logger)
            let id = try #require(result.ids.first)
            scenario.jobs[state] = id
            switch state {
            case .available:
                break
            case .running:
                _ = try await db.query("UPDATE \(identifier: queue.jobsTable) SET state = 'running', attempt = 1, attempted_at = now(), lease_owner = 'worker-1', lease_token = gen_random_uuid(), lease_expires_at = now() + interval '1 minute' WHERE id = \(id)")
            case .dead, .cancelled:
                let error = state == .dead ? errorScript : "cancelled by an operator"
                _ = try await db.query("UPDATE \(identifier: queue.jobsTable) SET state = \(state.rawValue), attempt = max_attempts, attempted_at = now() - interval '2 seconds', finished_at = now(), last_error = \(error) WHERE id = \(id)")
            case .completed:
                _ = try await db.query("UPDATE \(identifier: queue.jobsTable) SET state = 'completed', attempt = 1, attempted_at = now() - interval '1 second', finished_at = now() WHERE id = \(id)")
                _ = try await db.query("""
                    WITH moved AS (DELETE FROM \(identifier: queue.jobsTable) WHERE id = \(id) RETURNING *)
                    INSERT INTO \(identifier: queue.completedTable) SELECT * FROM moved
                    """)
            }
        }
        return scenario
    }
}

/// Holds `ConsoleScenario.lockName` on one connection with two more queued behind it; the
/// body gets the three pids (holder first).
func withBlockedSessions<T: Sendable>(_ db: TestContext, _ body: @Sendable ([Int32]) async throws -> T) async throws -> T {
    try await db.withConnections(3) { connections in
        let key = LockKey.hashed(ConsoleScenario.lockName)
        var pids: [Int32] = []
        for connection in connections {
            pids.append(try await connection.query("SELECT pg_backend_pid()", logger: db.logger).collect()[0].decode(Int32.self))
        }
        let value = try #require(key.int64Value)
        _ = try await connections[0].query("SELECT pg_advisory_lock(\(value))", logger: db.logger).collect()
        let first = Task { try? await connections[1].query("SELECT pg_advisory_lock(\(value))", logger: db.logger).collect() }
        try await waitUntil("the first waiter queues") { try await waiters(db) == 1 }
        let second = Task { try? await connections[2].query("SELECT pg_advisory_lock(\(value))", logger: db.logger).collect() }
        try await waitUntil("the second waiter queues") { try await waiters(db) == 2 }
        do {
            let result = try await body(pids)
            try await release(connections, pids: pids, first: first, second: second, db: db)
            return result
        } catch {
            try? await release(connections, pids: pids, first: first, second: second, db: db)
            throw error
        }
    }
}

private func release(_ connections: [PostgresConnection], pids: [Int32], first: Task<[PostgresRow]?, Never>, second: Task<[PostgresRow]?, Never>, db: TestContext) async throws {
    // Each unlocks once granted. A statement on a connection whose backend was terminated
    // would never be answered (the driver's trap): only live sessions are asked.
    func unlock(_ index: Int) async throws {
        let alive = try await db.scalar("SELECT count(*)::int FROM pg_stat_activity WHERE pid = \(pids[index])", as: Int.self) == 1
        if alive && !connections[index].isClosed {
            _ = try? await connections[index].query("SELECT pg_advisory_unlock_all()", logger: db.logger).collect()
        }
    }
    try await unlock(0)
    _ = await first.value
    try await unlock(1)
    _ = await second.value
    try await unlock(2)
}

func waiters(_ db: TestContext) async throws -> Int {
    try await db.scalar("""
        SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """, as: Int.self)
}

extension String {
    /// The value of the first `name="csrf"` field in a page.
    var csrfToken: String? {
        guard let range = range(of: "name=\"csrf\" value=\"") else { return nil }
        let rest = self[range.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
    }
}
