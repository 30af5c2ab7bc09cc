import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import PostgresQueue
import ServiceLifecycle
import Testing

private struct Greeting: JobDefinition {
    static let kind = "greeting"
    var name: String
}

private struct Report: JobDefinition {
    static let kind = "report"
    static let queue = "reports"
    static let maxAttempts: Int32 = 3
    var customer: Int
    var requestID: String
}

private struct Sum: Codable, Sendable, Equatable {
    var total: Int
}

private enum Tenant {
    @TaskLocal static var current: String?
}

/// Middleware that runs the job inside its tenant (from the job's metadata) and records the order it was entered.
private struct TenantMiddleware: JobMiddleware {
    let trail: LockedBox<[String]>
    let name: String

    func run(_ job: ClaimedJob, context: JobContext, next: JobMiddlewareNext) async throws -> JobOutcome {
        trail.withLock { $0.append("\(name) in") }
        defer { trail.withLock { $0.append("\(name) out") } }
        return try await Tenant.$current.withValue(job.metadata["tenant"] ?? Tenant.current) {
            try await next(job, context)
        }
    }
}

/// Records every lifecycle event as text.
private struct EventLog: JobLifecycleObserver {
    let events: LockedBox<[String]>

    func jobsEnqueued(_ jobs: [NewJob], result: EnqueueResult) async {
        events.withLock { $0.append("enqueued \(jobs.map(\.kind).joined(separator: ","))") }
    }
    func jobStarted(_ job: ClaimedJob) async { events.withLock { $0.append("started \(job.kind) \(job.attempt)") } }
    func jobCompleted(_ job: ClaimedJob, runtime: Duration) async { events.withLock { $0.append("completed \(job.kind)") } }
    func jobFailed(_ job: ClaimedJob, error: String, retryAt: Date?) async {
        events.withLock { $0.append("failed \(job.kind) \(job.attempt) \(retryAt == nil ? "final" : "retry")") }
    }
    func jobDead(_ job: ClaimedJob, reason: String) async { events.withLock { $0.append("dead \(job.kind): \(reason)") } }
}

/// Records starts and failures, and holds the worker in `jobFailed` until the gate is finished.
private struct GatedFailureLog: JobLifecycleObserver {
    let events: LockedBox<[String]>
    let gate: AsyncStream<Void>

    func jobStarted(_ job: ClaimedJob) async { events.withLock { $0.append("started \(job.attempt)") } }
    func jobFailed(_ job: ClaimedJob, error: String, retryAt: Date?) async {
        events.withLock { $0.append("failed \(job.attempt)") }
        for await _ in gate { break }
    }
}

@Suite("PostgresQueue handlers and kinds")
struct QueueHandlerTests {
    @Test func handlersDecideCompleteSnoozeRetryDiscardAndCancel() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try await makeQueue(db)
            var handlers = JobHandlers()
            handlers.registerWithOutcome("snoozer") { (_: Work, context) in
                context.job.snoozes == 0 ? .snooze(for: .milliseconds(20)) : .complete
            }
            handlers.registerWithOutcome("retrier") { (_: Work, context) in
                context.job.attempt == 1 ? .retry(after: .milliseconds(20), reason: "the remote asked for later") : .complete
            }
            handlers.registerWithOutcome("discarder") { (_: Work, _) in .discard(reason: "the account is gone") }
            handlers.registerWithOutcome("canceller") { (_: Work, _) in .cancel(reason: "superseded") }
            handlers.registerWithOutcome("summer") { (work: Work, _) in try .complete(output: Sum(total: work.n * 2)) }
            let worker = try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: try fastConfiguration(db), logger: db.logger)
            try await withWorkers([worker], logger: db.logger) {
                try await queue.enqueue(["snoozer", "retrier", "discarder", "canceller", "summer"].map { try NewJob(kind: $0, payload: Work(n: 21)) }, on: db.client, logger: db.logger)
                try await waitUntil("every job reached its end") {
                    try await db.scalar("SELECT count(*)::int FROM q.all_jobs WHERE state IN ('completed', 'dead', 'cancelled')", as: Int.self) == 5
                }
            }
            var rows: [String: (String, Int32, Int32, String?, String?)] = [:]
            for row in try await db.query("SELECT kind, state, attempt, snoozes, last_error, output::text FROM q.all_jobs") {
                let (kind, state, attempt, snoozes, error, output) = try row.decode((String, String, Int32, Int32, String?, String?).self)
                rows[kind] = (state, attempt, snoozes, error, output)
            }
            // A snooze does not count as an attempt.
            #expect(rows["snoozer"]?.0 == "completed" && rows["snoozer"]?.1 == 1 && rows["snoozer"]?.2 == 1)
            // A retry counts, with the handler's reason recorded.
            #expect(rows["retrier"]?.0 == "completed" && rows["retrier"]?.1 == 2 && rows["retrier"]?.3 == "the remote asked for later")
            // A discard is dead at once, whatever attempts are left.
            #expect(rows["discarder"]?.0 == "dead" && rows["discarder"]?.1 == 1 && rows["discarder"]?.3 == "the account is gone")
            #expect(rows["canceller"]?.0 == "cancelled" && rows["canceller"]?.3 == "superseded")
            #expect(rows["summer"]?.0 == "completed" && rows["summer"]?.4 == #"{"total": 42}"#)
        }
    }

    @Test func kindSettingsLimitAttemptsAndATimedOutRunIsCancelledAndFails() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try await makeQueue(db)
            let cancelledRuns = LockedBox(0)
            var handlers = JobHandlers()
            // Jobs carry 20 attempts; the kind allows 2.
            handlers.register("flaky", settings: JobKindSettings(maxAttempts: 2, backoff: Backoff(initial: .milliseconds(10), maximum: .milliseconds(20)))) { (_: Work, _) in
                struct Flaky: Error {}
                throw Flaky()
            }
            // Runs forever unless cancelled: the run timeout cancels it.
            handlers.register("slow", settings: JobKindSettings(maxAttempts: 2, backoff: Backoff(initial: .milliseconds(10), maximum: .milliseconds(20)), runTimeout: .milliseconds(150))) { (_: Work, _) in
                do { try await suspendUntilCancelled() } catch { cancelledRuns.withLock { $0 += 1 }; throw error }
            }
            let worker = try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: try fastConfiguration(db), logger: db.logger)
            try await withWorkers([worker], logger: db.logger) {
                try await queue.enqueue([try NewJob(kind: "flaky", payload: Work(n: 1)), try NewJob(kind: "slow", payload: Work(n: 2))], on: db.client, logger: db.logger)
                try await waitUntil("both are dead") { try await stateCounts(db) == ["dead": 2] }
            }
            #expect(try await db.scalar("SELECT attempt FROM q.all_jobs WHERE kind = 'flaky'", as: Int32.self) == 2)
            #expect(try await db.scalar("SELECT attempt FROM q.all_jobs WHERE kind = 'slow'", as: Int32.self) == 2)
            #expect(try await db.scalar("SELECT last_error FROM q.all_jobs WHERE kind = 'slow'", as: String.self).contains("runTimeout"))
            #expect(cancelledRuns.value == 2)
            // Bad settings are refused when the worker is made.
            var bad = JobHandlers()
            bad.register("x", settings: JobKindSettings(runTimeout: .zero)) { (_: Work, _) in }
            #expect(throws: PostgresLocksError.self) { try QueueWorker(queue: queue, client: db.client, handlers: bad, logger: db.logger) }
        }
    }

    @Test func aJobPastItsMaximumRuntimeLosesItsLeaseEvenIfItsHandlerIgnoresCancellation() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try await makeQueue(db)
            let (release, releaseAll) = AsyncStream<Void>.makeStream()
            let runs = LockedBox(0)
            var handlers = JobHandlers()
            handlers.register("stubborn", settings: JobKindSettings(maxRuntime: .milliseconds(300))) { (_: Work, _) in
                runs.withLock { $0 += 1 }
                for await _ in release { break }  // ignores cancellation
            }
            var configuration = try fastConfiguration(db, concurrency: 2, lease: .milliseconds(300))
            configuration.heartbeat = .milliseconds(50)
            let worker = try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: configuration, logger: db.logger)
            try await withWorkers([worker], logger: db.logger) {
                try await queue.enqueue(try NewJob(kind: "stubborn", payload: Work(n: 1)), on: db.client, logger: db.logger)
                // Heartbeats keep the lease for 300 ms, then stop: the reaper makes the job
                // available again and the free slot claims it a second time.
                try await waitUntil("the job is claimed a second time") { runs.value == 2 }
                #expect(try await db.scalar("SELECT attempt FROM q.all_jobs", as: Int32.self) == 2)
                releaseAll.yield()
                releaseAll.yield()
                releaseAll.finish()
            }
        }
    }

    @Test func typedJobDefinitionsEnqueueWithTheirKindQueueAndAttemptsAndRunTheirHandler() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try await makeQueue(db)
            try await db.query("CREATE TABLE greeted (name text NOT NULL)")
            var handlers = JobHandlers()
            handlers.register(Greeting.self) { greeting, context in
                try await context.client.checkedQuery("INSERT INTO greeted VALUES (\(greeting.name))", logger: context.logger)
            }
            let worker = try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: try fastConfiguration(db), logger: db.logger)
            try await withWorkers([worker], logger: db.logger) {
                try await queue.enqueue(try NewJob(Greeting(name: "Ada")), on: db.client, logger: db.logger)
                try await waitUntil("the greeting ran") { try await stateCounts(db) == ["completed": 1] }
            }
            #expect(try await db.scalar("SELECT name FROM greeted", as: String.self) == "Ada")
            // A definition's own queue and attempts apply unless the enqueue says otherwise.
            let report = try NewJob(Report(customer: 1, requestID: "r"))
            #expect(report.kind == "report" && report.queue == "reports" && report.maxAttempts == 3)
            #expect(try NewJob(Report(customer: 1, requestID: "r"), queue: "urgent", maxAttempts: 9).queue == "urgent")
        }
    }

    @Test func aWorkerReportsAFailedAttemptBeforeItRunsTheRetry() async throws {
        // The retry is due 10 ms after the failure is written; the observer is held while it is
        // told of the failure. The worker (one slot) must not start attempt 2 meanwhile.
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let events = LockedBox<[String]>([])
            let (gate, open) = AsyncStream<Void>.makeStream()
            let queue = try JobQueue(schema: "q", observers: [GatedFailureLog(events: events, gate: gate)])
            try await queue.migrate(on: db.client, logger: db.logger)
            var handlers = JobHandlers()
            handlers.register("broken", settings: JobKindSettings(maxAttempts: 2, backoff: Backoff(initial: .milliseconds(10), maximum: .milliseconds(10)))) { (_: Work, _) in
                struct Broken: Error {}
                throw Broken()
            }
            let worker = try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: try fastConfiguration(db, concurrency: 1), logger: db.logger)
            try await withWorkers([worker], logger: db.logger) {
                defer { open.finish() }  // on every path, so the worker can stop
                try await queue.enqueue(try NewJob(kind: "broken", payload: Work(n: 1)), on: db.client, logger: db.logger)
                try await waitUntil("the first attempt failed") { events.value.contains("failed 1") }
                try await holdsThroughout(.milliseconds(400), "attempt 2 has not started") { !events.value.contains("started 2") }
                open.finish()
                try await waitUntil("the second attempt failed") { events.value.contains("failed 2") }
            }
            #expect(events.value == ["started 1", "failed 1", "started 2", "failed 2"])
        }
    }

    @Test func middlewareWrapsEveryJobInOrderAndObserversSeeEachStepOfItsLife() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let events = LockedBox<[String]>([])
            let queue = try JobQueue(schema: "q", observers: [EventLog(events: events)])
            try await queue.migrate(on: db.client, logger: db.logger)
            let trail = LockedBox<[String]>([])
            let tenants = LockedBox<[String]>([])
            var handlers = JobHandlers()
            handlers.use(TenantMiddleware(trail: trail, name: "outer"))
            handlers.use(TenantMiddleware(trail: trail, name: "inner"))
            handlers.register("ok") { (_: Work, _) in
                trail.withLock { $0.append("handler") }
                tenants.withLock { $0.append(Tenant.current ?? "none") }
            }
            handlers.register("broken", settings: JobKindSettings(maxAttempts: 2, backoff: Backoff(initial: .milliseconds(10), maximum: .milliseconds(10)))) { (_: Work, _) in
                struct Broken: Error, CustomStringConvertible { var description: String { "broken on purpose" } }
                throw Broken()
            }
            let worker = try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: try fastConfiguration(db, concurrency: 1), logger: db.logger)
            try await withWorkers([worker], logger: db.logger) {
                try await queue.enqueue(try NewJob(kind: "ok", payload: Work(n: 1), metadata: ["tenant": "acme"]), on: db.client, logger: db.logger)
                try await waitUntil("ok completed") { events.value.contains("completed ok") }
                try await queue.enqueue(try NewJob(kind: "broken", payload: Work(n: 2)), on: db.client, logger: db.logger)
                try await waitUntil("broken is dead") { events.value.contains { $0.hasPrefix("dead broken") } }
            }
            #expect(trail.value.prefix(5) == ["outer in", "inner in", "handler", "inner out", "outer out"])
            #expect(tenants.value == ["acme"])
            // The enqueuing task tells its observers once the enqueue has committed; a worker
            // woken by that commit may start, even finish, the job first. So each enqueue is
            // reported once, in no fixed place among the job's own steps.
            let seen = events.value
            #expect(seen.filter { !$0.hasPrefix("enqueued") } == [
                "started ok 1", "completed ok",
                "started broken 1", "failed broken 1 retry",
                "started broken 2", "failed broken 2 final", "dead broken: broken on purpose",
            ])
            #expect(seen.filter { $0.hasPrefix("enqueued") }.sorted() == ["enqueued broken", "enqueued ok"], "\(seen)")
        }
    }

    @Test func tagsMetadataAndOutputAreStoredAndReadBack() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let queue = try await makeQueue(db)
            try await queue.enqueue(try NewJob(kind: "work", payload: Work(n: 1), tags: ["billing", "eu"], metadata: ["tenant": "acme", "traceparent": "00-abc-def-01"]), on: db.client, logger: db.logger)
            let claimed = try await queue.claim(from: "default", limit: 1, lease: .seconds(30), owner: "t", on: db.client, logger: db.logger)
            #expect(claimed.first?.tags == ["billing", "eu"])
            #expect(claimed.first?.metadata == ["tenant": "acme", "traceparent": "00-abc-def-01"])
            try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                try await queue.complete(claimed[0].lease, outputJSON: #"{"rows": 3}"#, in: tx)
            }
            #expect(try await db.scalar("SELECT output::text FROM q.all_jobs", as: String.self) == #"{"rows": 3}"#)
            #expect(try await db.scalar("SELECT count(*)::int FROM q.all_jobs WHERE 'eu' = ANY(tags) AND metadata->>'tenant' = 'acme'", as: Int.self) == 1)
            #expect(throws: PostgresLocksError.self) { try NewJob(kind: "k", tags: Array(repeating: "t", count: 21)) }
            #expect(throws: PostgresLocksError.self) { try NewJob(kind: "k", tags: [""]) }
            #expect(throws: PostgresLocksError.self) { try NewJob(kind: "k", metadata: ["a": "x\u{0}"]) }
        }
    }

    @Test func uniqueJobsByChosenFieldsWithinAPeriodOverChosenStatesAreInsertedOnceUnderConcurrency() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 24) { db in
            let queue = try await makeQueue(db)
            let hourly = UniqueOptions(byFields: ["customer"], period: .seconds(3600))
            let now = Date()
            // 40 concurrent enqueues of the same customer (different request ids) in the same hour: one job.
            let inserted = try await withThrowingTaskGroup(of: Int.self) { group in
                for n in 0..<40 {
                    group.addTask {
                        let job = try NewJob(Report(customer: 7, requestID: "r\(n)"), unique: hourly, now: now)
                        return try await queue.enqueue(job, on: db.client, logger: db.logger).ids.count
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(inserted == 1)
            // Completed still counts (the default states include it): the hour stays closed.
            let claimed = try await queue.claim(from: "reports", limit: 1, lease: .seconds(30), owner: "t", on: db.client, logger: db.logger)
            #expect(try await queue.complete(claimed.map(\.lease), on: db.client, logger: db.logger).isEmpty)
            #expect(try await queue.enqueue(try NewJob(Report(customer: 7, requestID: "again"), unique: hourly, now: now), on: db.client, logger: db.logger).ids.isEmpty)
            // Another customer, or the next hour, is a different job.
            #expect(try await queue.enqueue(try NewJob(Report(customer: 8, requestID: "x"), unique: hourly, now: now), on: db.client, logger: db.logger).ids.count == 1)
            #expect(try await queue.enqueue(try NewJob(Report(customer: 7, requestID: "y"), unique: hourly, now: now + 3600), on: db.client, logger: db.logger).ids.count == 1)
            // Uniqueness over live states only: once completed, the same arguments enqueue again.
            let live = UniqueOptions(states: [.available, .running])
            #expect(try await queue.enqueue(try NewJob(kind: "ping", payload: Work(n: 1), unique: live), on: db.client, logger: db.logger).ids.count == 1)
            #expect(try await queue.enqueue(try NewJob(kind: "ping", payload: Work(n: 1), unique: live), on: db.client, logger: db.logger).ids.isEmpty)
            let ping = try await queue.claim(from: "default", kinds: ["ping"], limit: 1, lease: .seconds(30), owner: "t", on: db.client, logger: db.logger)
            #expect(try await queue.complete(ping.map(\.lease), on: db.client, logger: db.logger).isEmpty)
            #expect(try await queue.enqueue(try NewJob(kind: "ping", payload: Work(n: 1), unique: live), on: db.client, logger: db.logger).ids.count == 1)
            #expect(throws: PostgresLocksError.self) { try NewJob(kind: "k", uniqueKey: "a", unique: live) }
            #expect(throws: PostgresLocksError.self) { try NewJob(kind: "k", unique: UniqueOptions(period: .milliseconds(10))) }
        }
    }
}
