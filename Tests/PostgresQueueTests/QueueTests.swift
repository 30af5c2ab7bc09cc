import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
@testable import PostgresQueue
import ServiceLifecycle
import Testing

@Suite("PostgresQueue")
struct QueueTests {
    @Test func everyJobIsCompletedExactlyOnceByEightWorkers() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 40) { db in
            let queue = try await makeQueue(db)
            try await db.query("CREATE TABLE effects (job bigint NOT NULL, n int NOT NULL)")
            var handlers = JobHandlers()
            handlers.register("work") { (work: Work, context) in
                // The side effect and the completion commit together.
                try await context.client.withCheckedTransaction(logger: context.logger) { tx in
                    try await tx.query("INSERT INTO effects VALUES (\(context.job.id), \(work.n))")
                    try await context.complete(in: tx)
                }
            }
            let workers = try (0..<8).map { index in
                try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: try fastConfiguration(db, concurrency: 4, owner: "w\(index)"), logger: db.logger)
            }
            try await withWorkers(workers, logger: db.logger) {
                // Enqueue while the workers run: batches and single jobs.
                for batch in 0..<10 {
                    try await queue.enqueue((0..<190).map { try NewJob(kind: "work", payload: Work(n: batch * 1000 + $0)) }, on: db.client, logger: db.logger)
                }
                for n in 0..<100 { try await queue.enqueue(try NewJob(kind: "work", payload: Work(n: 100_000 + n)), on: db.client, logger: db.logger) }
                try await waitUntil(timeout: .seconds(60), "all 2000 jobs are completed") {
                    try await stateCounts(db)["completed"] == 2000
                }
            }
            #expect(try await db.scalar("SELECT count(*)::int FROM effects", as: Int.self) == 2000)
            #expect(try await db.scalar("SELECT count(DISTINCT job)::int FROM effects", as: Int.self) == 2000)
            #expect(try await db.scalar("SELECT count(DISTINCT n)::int FROM effects", as: Int.self) == 2000)
            #expect(try await db.scalar("SELECT count(*)::int FROM q.all_jobs WHERE attempt <> 1", as: Int.self) == 0)
        }
    }

    @Test func aRolledBackEnqueueLeavesNoJob() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let queue = try await makeQueue(db)
            struct Abort: Error {}
            await #expect(throws: Abort.self) {
                try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                    try await queue.enqueue([try NewJob(kind: "work", payload: Work(n: 1))], in: tx)
                    throw Abort()
                }
            }
            #expect(try await stateCounts(db).isEmpty)
            try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                try await queue.enqueue([try NewJob(kind: "work", payload: Work(n: 2))], in: tx)
            }
            #expect(try await stateCounts(db) == ["available": 1])
        }
    }

    @Test func anEnqueueWhoseBackendEndsBeforeItCommitsIsNotConfirmed() async throws {
        // The enqueue statement commits after its result is sent (outside a transaction block
        // the server commits at the Sync that follows). A deferred trigger holds that commit at
        // an advisory lock the test holds, and the backend is terminated there: the result
        // arrives with the fatal error, and the jobs do not exist. The caller must not be told
        // they do.
        try await TestDatabase.withDatabase(maximumConnections: 6) { db in
            let queue = try await makeQueue(db)
            let gateKey: Int64 = 4_242_002
            try await db.query("""
                CREATE FUNCTION q.wait_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN PERFORM pg_advisory_xact_lock(\(unescaped: String(gateKey))); RETURN NULL; END $$
                """)
            try await db.query("""
                CREATE CONSTRAINT TRIGGER jobs_wait_at_commit AFTER INSERT ON \(identifier: queue.jobsTable)
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION q.wait_at_commit()
                """)
            let holder = try await db.makeConnection()
            let observer = try await db.makeConnection()
            defer {
                Task {
                    try? await holder.close()
                    try? await observer.close()
                }
            }
            try await db.send("SELECT pg_advisory_lock(\(gateKey))", on: holder)
            let enqueue = Task {
                try await queue.enqueue([try NewJob(kind: "work", payload: Work(n: 1)), try NewJob(kind: "work", payload: Work(n: 2))], on: db.client, logger: db.logger)
            }
            let pid = try await db.backendWaitingOnALock(runningStatementLike: "%INSERT INTO%", observer: observer)
            try await db.send("SELECT pg_terminate_backend(\(pid))", on: observer)
            let outcome = try await withinTimeLimit(.seconds(20), "the enqueue") { await enqueue.result }
            switch outcome {
            case .success(let result): Issue.record("the enqueue was confirmed (\(result.ids)) though it rolled back")
            case .failure(let error): #expect((error as? PostgresLocksError)?.code == .connectionLost)
            }
            #expect(try await stateCounts(db).isEmpty)
        }
    }

    @Test func aStaleLeaseCannotCompleteFailOrExtendAReclaimedJob() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let queue = try await makeQueue(db)
            try await queue.enqueue(try NewJob(kind: "work", payload: Work(n: 1)), on: db.client, logger: db.logger)
            let first = try await queue.claim(from: "default", limit: 10, lease: .milliseconds(100), owner: "old", on: db.client, logger: db.logger)
            #expect(first.count == 1)
            // The old worker stops heartbeating; once its lease expires the reaper reclaims the job.
            try await waitUntil("the expired lease is reclaimed") {
                try await queue.reap(on: db.client, logger: db.logger).reclaimed == 1
            }
            let second = try await queue.claim(from: "default", limit: 10, lease: .seconds(30), owner: "new", on: db.client, logger: db.logger)
            #expect(second.count == 1 && second[0].attempt == 2 && second[0].lease != first[0].lease)
            // The old owner's late outcome is refused by the fencing check.
            #expect(try await queue.complete([first[0].lease], on: db.client, logger: db.logger) == [first[0].lease])
            #expect(try await queue.fail(first[0].lease, error: "late", retryAfter: .zero, on: db.client, logger: db.logger) == .leaseLost)
            #expect(try await queue.extendLeases([first[0].lease], by: .seconds(1), on: db.client, logger: db.logger) == [first[0].lease])
            let lostInTransaction = await #expect(throws: PostgresQueueError.self) {
                try await db.client.withCheckedTransaction(logger: db.logger) { tx in try await queue.complete(first[0].lease, in: tx) }
            }
            #expect(lostInTransaction?.code == .leaseLost)
            // The new owner completes it, once.
            #expect(try await queue.complete([second[0].lease], on: db.client, logger: db.logger).isEmpty)
            #expect(try await stateCounts(db) == ["completed": 1])
        }
    }

    @Test func failuresRetryWithBackoffAndEndDeadAfterMaxAttempts() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try await makeQueue(db)
            try await db.query("CREATE TABLE attempts (job bigint, attempt int, at timestamptz DEFAULT clock_timestamp())")
            struct Flaky: Error {}
            var handlers = JobHandlers()
            handlers.register("flaky") { (_: Work, context) in
                try await context.client.checkedQuery("INSERT INTO attempts (job, attempt) VALUES (\(context.job.id), \(context.job.attempt))", logger: context.logger)
                throw Flaky()
            }
            let worker = try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: try fastConfiguration(db), logger: db.logger)
            let id = try await withWorkers([worker], logger: db.logger) {
                let id = try await queue.enqueue(try NewJob(kind: "flaky", payload: Work(n: 1), maxAttempts: 4), on: db.client, logger: db.logger).ids[0]
                try await waitUntil(timeout: .seconds(20), "the job is dead") { try await stateCounts(db) == ["dead": 1] }
                return id
            }
            let attempts = try await db.query("SELECT attempt, EXTRACT(EPOCH FROM at - lag(at) OVER (ORDER BY attempt))::float8 FROM attempts WHERE job = \(id) ORDER BY attempt")
            let decoded = try attempts.map { try $0.decode((Int32, Double?).self) }
            #expect(decoded.map(\.0) == [1, 2, 3, 4])
            // Backoff ceilings 50, 100, 200 ms, equal jitter: each gap at least half its ceiling.
            let gaps = decoded.compactMap(\.1)
            #expect(gaps.count == 3)
            for (gap, ceiling) in zip(gaps, [0.05, 0.1, 0.2]) { #expect(gap >= ceiling / 2 - 0.005, "gap \(gap) s after a ceiling of \(ceiling) s") }
            let lastError = try await db.scalar("SELECT last_error FROM q.all_jobs WHERE id = \(id)", as: String.self)
            #expect(lastError.contains("Flaky"))
        }
    }

    @Test func uniqueKeysDedupeLiveJobs() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let queue = try await makeQueue(db)
            let first = try await queue.enqueue([
                try NewJob(kind: "work", payload: Work(n: 1), uniqueKey: "report:2026-11-21"),
                try NewJob(kind: "work", payload: Work(n: 2), uniqueKey: "report:2026-11-21"),
                try NewJob(kind: "work", payload: Work(n: 3)),
            ], on: db.client, logger: db.logger)
            #expect(first.ids.count == 2)
            #expect(first.skippedUniqueKeys == ["report:2026-11-21"])
            let again = try await queue.enqueue(try NewJob(kind: "work", payload: Work(n: 4), uniqueKey: "report:2026-11-21"), on: db.client, logger: db.logger)
            #expect(again.ids.isEmpty && again.skippedUniqueKeys == ["report:2026-11-21"])
            // Once the job is finished, the key is free again.
            let claimed = try await queue.claim(from: "default", limit: 10, lease: .seconds(30), owner: "t", on: db.client, logger: db.logger)
            #expect(try await queue.complete(claimed.map(\.lease), on: db.client, logger: db.logger).isEmpty)
            let later = try await queue.enqueue(try NewJob(kind: "work", payload: Work(n: 5), uniqueKey: "report:2026-11-21"), on: db.client, logger: db.logger)
            #expect(later.ids.count == 1)
        }
    }

    @Test func gracefulShutdownFinishesRunningJobsAndClaimsNothingNew() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try await makeQueue(db)
            let (release, releaseContinuation) = AsyncStream<Void>.makeStream()
            let started = LockedBox(0)
            var handlers = JobHandlers()
            handlers.register("slow") { (_: Work, _) in
                started.withLock { $0 += 1 }
                for await _ in release { break }
            }
            let worker = try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: try fastConfiguration(db, concurrency: 2), logger: db.logger)
            let group = ServiceGroup(services: [worker], gracefulShutdownSignals: [], cancellationSignals: [], logger: db.logger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await queue.enqueue((0..<5).map { try NewJob(kind: "slow", payload: Work(n: $0)) }, on: db.client, logger: db.logger)
                try await waitUntil("two jobs run") { started.value == 2 }
                await group.triggerGracefulShutdown()
                try await waitUntil("the worker is shutting down") { worker.isShuttingDown }
                // Shutting down: the running two finish once released; nothing new is claimed.
                releaseContinuation.yield()
                releaseContinuation.yield()
                releaseContinuation.finish()
                try await tasks.waitForAll()
            }
            #expect(try await stateCounts(db) == ["completed": 2, "available": 3])
            #expect(started.value == 2)
            #expect(try await db.scalar("SELECT count(*)::int FROM q.all_jobs WHERE state = 'available' AND attempt = 0", as: Int.self) == 3)
        }
    }

    @Test func gracePeriodOverGivesLeasesBackWithoutCountingTheAttempt() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try await makeQueue(db)
            let started = LockedBox(0)
            var handlers = JobHandlers()
            handlers.register("stuck") { (_: Work, _) in
                started.withLock { $0 += 1 }
                let (never, _) = AsyncStream<Void>.makeStream()
                for await _ in never {}
                try Task.checkCancellation()
            }
            var configuration = try fastConfiguration(db, concurrency: 1)
            configuration.shutdownGracePeriod = .milliseconds(200)
            let worker = try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: configuration, logger: db.logger)
            try await withWorkers([worker], logger: db.logger) {
                try await queue.enqueue(try NewJob(kind: "stuck", payload: Work(n: 1)), on: db.client, logger: db.logger)
                try await waitUntil("the job runs") { started.value == 1 }
            }
            #expect(try await db.scalar("SELECT count(*)::int FROM q.all_jobs WHERE state = 'available' AND attempt = 0 AND lease_token IS NULL", as: Int.self) == 1)
        }
    }

    @Test func aPayloadThatDoesNotDecodeFailsTheJobAndTheWorkerGoesOn() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try await makeQueue(db)
            var handlers = JobHandlers()
            handlers.register("work") { (_: Work, _) in }
            let worker = try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: try fastConfiguration(db), logger: db.logger)
            try await withWorkers([worker], logger: db.logger) {
                try await queue.enqueue([
                    try NewJob(kind: "work", payloadJSON: #"{"n": "not a number"}"#),
                    try NewJob(kind: "work", payload: Work(n: 2)),
                ], on: db.client, logger: db.logger)
                try await waitUntil("both jobs are finished") { try await stateCounts(db) == ["dead": 1, "completed": 1] }
            }
            let error = try await db.scalar("SELECT last_error FROM q.all_jobs WHERE state = 'dead'", as: String.self)
            #expect(error.contains("does not decode"))
        }
    }

    @Test func anIdleWorkerPicksUpANewJobWithinMilliseconds() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try await makeQueue(db)
            let picked = LockedBox<[Duration]>([])
            let enqueuedAt = LockedBox(ContinuousClock.now)
            var handlers = JobHandlers()
            handlers.register("ping") { (_: Work, _) in
                let now = ContinuousClock.now
                picked.withLock { $0.append(now - enqueuedAt.value) }
            }
            var configuration = try fastConfiguration(db)
            configuration.pollInterval = .seconds(30)  // only the notification can wake it in time
            let worker = try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: configuration, logger: db.logger)
            try await withWorkers([worker], logger: db.logger) {
                // Let the LISTEN connection come up: the first job may be found by the first claim.
                try await queue.enqueue(try NewJob(kind: "ping", payload: Work(n: 0)), on: db.client, logger: db.logger)
                try await waitUntil("the first job runs") { picked.value.count == 1 }
                for n in 1...20 {
                    enqueuedAt.withLock { $0 = ContinuousClock.now }
                    try await queue.enqueue(try NewJob(kind: "ping", payload: Work(n: n)), on: db.client, logger: db.logger)
                    try await waitUntil("job \(n) runs", { picked.value.count == n + 1 })
                }
            }
            // Not a speed test (pglock bench queue measures pickup latency): with a 30 s poll,
            // only the notification can have woken the worker this soon.
            let latencies = picked.value.dropFirst().sorted()
            #expect(latencies.last! < .seconds(5), "pickup latencies: \(latencies)")
        }
    }

    @Test func concurrentMigrationsApplyOnceAndBadInputIsTyped() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try JobQueue(schema: "q")
            let applied = try await withThrowingTaskGroup(of: [Int32].self) { group in
                for _ in 0..<6 { group.addTask { try await queue.migrate(on: db.client, logger: db.logger) } }
                return try await group.reduce(into: [Int32]()) { $0 += $1 }
            }
            #expect(applied == Array(1...JobQueue.schemaVersion))
            #expect(throws: PostgresLocksError.self) { try JobQueue(schema: "q; DROP TABLE x") }
            #expect(throws: PostgresLocksError.self) { try NewJob(kind: "", payloadJSON: "{}") }
            #expect(throws: PostgresLocksError.self) { try NewJob(kind: "k", payloadJSON: "{}", maxAttempts: 0) }
            #expect(throws: PostgresLocksError.self) { try NewJob(kind: String(repeating: "k", count: 201), payloadJSON: "{}") }
            #expect(throws: PostgresLocksError.self) { try NewJob(kind: "k", payloadJSON: "{}", queue: "a\u{0}b") }
            #expect(throws: PostgresLocksError.self) { try NewJob(kind: "k", payloadJSON: "{}", schedule: .after(.seconds(-1))) }
            await #expect(throws: PostgresLocksError.self) { try await queue.enqueue([], on: db.client, logger: db.logger) }
            // Invalid JSON is refused by the server, and nothing of the batch is written.
            await #expect(throws: PostgresLocksError.self) {
                try await queue.enqueue([try NewJob(kind: "k", payloadJSON: "{}"), try NewJob(kind: "k", payloadJSON: "{not json")], on: db.client, logger: db.logger)
            }
            #expect(try await stateCounts(db).isEmpty)
            await #expect(throws: PostgresLocksError.self) {
                try await queue.claim(from: "default", limit: 0, lease: .seconds(1), owner: "t", on: db.client, logger: db.logger)
            }
        }
    }
}
