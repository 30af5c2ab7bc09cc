import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import PostgresQueue
import Testing

@Suite("PostgresQueue completed jobs kept apart")
struct QueueHistoryTests {
    @Test func completedJobsLeaveTheClaimableTableExactlyOnceUnderManyWorkers() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 24) { db in
            let queue = try await makeQueue(db)
            let total = 3_000
            try await queue.enqueueByCopy(try (0..<total).map { try NewJob(kind: "work", payload: Work(n: $0), tags: ["t"]) }, on: db.client, logger: db.logger)
            var handlers = JobHandlers()
            handlers.registerWithOutcome("work") { (work: Work, _) in try .complete(output: Work(n: work.n * 2)) }
            let workers = try (0..<4).map { index in
                try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: fastConfiguration(db, concurrency: 16, owner: "w\(index)"), logger: db.logger)
            }
            try await withWorkers(workers, logger: db.logger) {
                try await waitUntil(timeout: .seconds(120), "every job is completed") {
                    try await db.scalar("SELECT count(*)::int FROM q.completed_jobs", as: Int.self) == total
                }
            }
            // Nothing completed is left where claims look; every job is in the completed table
            // once, with its payload, tags, output and timings, and without its lease token.
            #expect(try await db.scalar("SELECT count(*)::int FROM q.jobs", as: Int.self) == 0)
            let (count, distinct, outputs, sane) = try await db.query("""
                SELECT count(*)::int, count(DISTINCT (payload->>'n'))::int,
                       count(*) FILTER (WHERE (output->>'n')::int = 2 * (payload->>'n')::int)::int,
                       bool_and(state = 'completed' AND lease_token IS NULL AND lease_expires_at IS NULL AND tags = '{t}'
                                AND attempt = 1 AND finished_at >= attempted_at AND lease_owner IS NOT NULL)
                FROM q.completed_jobs
                """)[0].decode((Int, Int, Int, Bool).self)
            #expect(count == total && distinct == total && outputs == total && sane)
            // Readers see both tables as one.
            let stats = try await queue.stats(on: db.client, logger: db.logger)
            #expect(stats.queues.first?.counts["completed"] == Int64(total))
            #expect(try await queue.list(state: .completed, limit: 5, on: db.client, logger: db.logger).count == 5)
        }
    }

    @Test func completionInATransactionThatRollsBackLeavesTheJobRunningInTheJobsTable() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let queue = try await makeQueue(db)
            try await queue.enqueue(try NewJob(kind: "work", payload: Work(n: 1)), on: db.client, logger: db.logger)
            let lease = try #require(try await queue.claim(from: "default", limit: 1, lease: .seconds(30), owner: "t", on: db.client, logger: db.logger).first).lease
            struct Abort: Error {}
            await #expect(throws: Abort.self) {
                try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                    try await queue.complete(lease, outputJSON: #"{"done":true}"#, in: tx)
                    throw Abort()
                }
            }
            #expect(try await db.scalar("SELECT state FROM q.jobs WHERE id = \(lease.id)", as: String.self) == "running")
            #expect(try await db.scalar("SELECT count(*)::int FROM q.completed_jobs", as: Int.self) == 0)
            try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                try await queue.complete(lease, outputJSON: #"{"done":true}"#, in: tx)
            }
            #expect(try await db.scalar("SELECT output->>'done' FROM q.completed_jobs WHERE id = \(lease.id)", as: String.self) == "true")
            // The lease is spent: a second completion is refused, and nothing is written twice.
            await #expect(throws: PostgresQueueError.self) {
                try await db.client.withCheckedTransaction(logger: db.logger) { tx in try await queue.complete(lease, in: tx) }
            }
            #expect(try await queue.complete([lease], on: db.client, logger: db.logger) == [lease])
            #expect(try await db.scalar("SELECT count(*)::int FROM q.all_jobs", as: Int.self) == 1)
        }
    }

    @Test func aJobUniqueWhileCompletedStaysInTheJobsTableSoTheDatabaseKeepsBlockingItsKey() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 16) { db in
            let queue = try await makeQueue(db)
            let once = UniqueOptions(states: [.available, .running, .completed])
            #expect(try await queue.enqueue(try NewJob(kind: "once", payload: Work(n: 1), unique: once), on: db.client, logger: db.logger).ids.count == 1)
            let claimed = try await queue.claim(from: "default", limit: 1, lease: .seconds(30), owner: "t", on: db.client, logger: db.logger)
            #expect(try await queue.complete(claimed.map(\.lease), on: db.client, logger: db.logger).isEmpty)
            #expect(try await db.scalar("SELECT state FROM q.jobs WHERE kind = 'once'", as: String.self) == "completed")
            #expect(try await db.scalar("SELECT count(*)::int FROM q.completed_jobs", as: Int.self) == 0)
            // Twelve concurrent enqueues of the same job: the unique index refuses every one.
            let inserted = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<12 {
                    group.addTask {
                        try await queue.enqueue(try NewJob(kind: "once", payload: Work(n: 1), unique: once), on: db.client, logger: db.logger).ids.count
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(inserted == 0)
            // Retention removes it from the jobs table like any finished job, and the key is free.
            try await db.query("UPDATE q.jobs SET finished_at = now() - interval '2 days'")
            #expect(try await queue.prune(olderThan: .seconds(3600), on: db.client, logger: db.logger) == 1)
            #expect(try await queue.enqueue(try NewJob(kind: "once", payload: Work(n: 1), unique: once), on: db.client, logger: db.logger).ids.count == 1)
        }
    }

    @Test func retentionAndPurgeReachBothTables() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let queue = try await makeQueue(db)
            try await queue.enqueue(try (0..<6).map { try NewJob(kind: "work", payload: Work(n: $0)) }, on: db.client, logger: db.logger)
            let claimed = try await queue.claim(from: "default", limit: 6, lease: .seconds(30), owner: "t", on: db.client, logger: db.logger)
            #expect(try await queue.complete(Array(claimed.prefix(4)).map(\.lease), on: db.client, logger: db.logger).isEmpty)
            #expect(try await queue.cancel(claimed[4].lease, reason: "no", on: db.client, logger: db.logger))
            #expect(try await queue.fail(claimed[5].lease, error: "boom", retryAfter: .zero, discard: true, on: db.client, logger: db.logger) == .dead)
            // Two completed jobs and the cancelled one are old; the dead one is kept without includingDead.
            try await db.query("UPDATE q.completed_jobs SET finished_at = now() - interval '2 days' WHERE id IN (SELECT id FROM q.completed_jobs ORDER BY id LIMIT 2)")
            try await db.query("UPDATE q.jobs SET finished_at = now() - interval '2 days'")
            #expect(try await queue.prune(olderThan: .seconds(3600), on: db.client, logger: db.logger) == 3)
            #expect(try await stateCounts(db) == ["completed": 2, "dead": 1])
            #expect(try await queue.purge(on: db.client, logger: db.logger) == 3)
            #expect(try await stateCounts(db).isEmpty)
        }
    }

    @Test func upgradingMovesCompletedJobsOutAndKeepsThoseWhoseKeyStillBlocks() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let queue = try JobQueue(schema: "q")
            // The schema as the release before this one left it, with completed jobs in it.
            #expect(try await queue.migrate(on: db.client, upTo: 2, logger: db.logger) == [1, 2])
            try await db.query("""
                INSERT INTO q.jobs (queue, kind, state, attempt, finished_at, unique_key, unique_states)
                VALUES ('default', 'plain', 'completed', 1, now(), NULL, NULL),
                       ('default', 'plain', 'completed', 1, now(), 'k1', '{available,running}'),
                       ('default', 'once', 'completed', 1, now(), 'k2', '{available,running,completed}'),
                       ('default', 'plain', 'dead', 3, now(), NULL, NULL),
                       ('default', 'plain', 'available', 0, NULL, NULL, NULL)
                """)
            #expect(try await queue.migrate(on: db.client, logger: db.logger) == Array(3...JobQueue.schemaVersion))
            #expect(try await db.scalar("SELECT count(*)::int FROM q.completed_jobs WHERE kind = 'plain'", as: Int.self) == 2)
            #expect(try await stateCounts(db) == ["completed": 3, "dead": 1, "available": 1])
            #expect(try await db.scalar("SELECT string_agg(state, ',' ORDER BY state) FROM q.jobs", as: String.self) == "available,completed,dead")
            // The moved rows keep their ids: new jobs do not collide with them.
            let ids = try await queue.enqueue(try NewJob(kind: "plain", payloadJSON: "{}"), on: db.client, logger: db.logger).ids
            #expect(try await db.scalar("SELECT count(*)::int FROM q.all_jobs WHERE id = \(ids[0])", as: Int.self) == 1)
        }
    }

    @Test func completionFindsItsJobsByPrimaryKeyNeverByWalkingTheRunningIndex() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let queue = try await makeQueue(db)
            try await queue.enqueueByCopy(Array(repeating: try NewJob(kind: "work", payload: Work(n: 1)), count: 20_000), on: db.client, logger: db.logger)
            try await db.query("ANALYZE q.jobs")
            let claimed = try await queue.claim(from: "default", limit: 2_000, lease: .seconds(30), owner: "t", on: db.client, logger: db.logger)
            // The statistics say almost nothing runs: the planner believes the running jobs'
            // index tiny. A completion that named `state = 'running'` was planned as a walk of
            // that whole index, which an old snapshot fills with every job that ever ran.
            var binds = PostgresBindings()
            binds.append(claimed.map(\.lease.id))
            binds.append(claimed.map(\.lease.token))
            binds.append(Array(repeating: "", count: claimed.count))
            let plan = try await db.client.checkedQuery(PostgresQuery(unsafeSQL: "EXPLAIN " + queue.completeSQL, binds: binds), logger: db.logger)
                .rows.map { try $0.decode(String.self) }.joined(separator: "\n")
            #expect(!plan.contains("jobs_running_lease"), "\(plan)")
            #expect(plan.contains("jobs_pkey"), "\(plan)")
            #expect(try await queue.complete(claimed.map(\.lease), on: db.client, logger: db.logger).isEmpty)
            // What lets the statements after a claim match the token alone: a token exists only
            // while its job runs, and the table refuses anything else.
            await #expect(throws: (any Error).self) {
                try await db.query("UPDATE q.jobs SET lease_token = gen_random_uuid() WHERE id = (SELECT min(id) FROM q.jobs)")
            }
        }
    }

    @Test func aBoundedReaperPassLooksOnlyAtLeasesThatExpiredSinceItsFloorAndAFullPassFindsTheRest() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let queue = try await makeQueue(db)
            try await queue.enqueue(try (0..<4).map { try NewJob(kind: "work", payload: Work(n: $0)) }, on: db.client, logger: db.logger)
            _ = try await queue.claim(from: "default", limit: 4, lease: .seconds(30), owner: "gone", on: db.client, logger: db.logger)
            // Two leases expired an hour ago (missed by earlier passes), two a second ago.
            try await db.query("UPDATE q.jobs SET lease_expires_at = now() - interval '1 hour' WHERE id IN (SELECT id FROM q.jobs ORDER BY id LIMIT 2)")
            try await db.query("UPDATE q.jobs SET lease_expires_at = now() - interval '1 second' WHERE lease_expires_at > now()")
            let floor = try await db.scalar("SELECT now() - interval '1 minute'", as: Date.self)
            let (bounded, serverNow) = try await queue.reap(limit: 1000, since: floor, on: db.client, logger: db.logger)
            #expect(bounded.reclaimed == 2 && bounded.dead == 0)
            #expect(abs(serverNow.timeIntervalSince(floor) - 60) < 5)
            #expect(try await stateCounts(db) == ["running": 2, "available": 2])
            #expect(try await queue.reap(limit: 1000, since: .distantPast, on: db.client, logger: db.logger).result.reclaimed == 2)
            #expect(try await stateCounts(db) == ["available": 4])
        }
    }
}

