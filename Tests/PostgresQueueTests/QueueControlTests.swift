import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import PostgresQueue
import ServiceLifecycle
import Testing

/// Workers that only a notification or the stored state can steer in time: a 30 s poll.
private func slowPollConfiguration(_ db: TestContext, concurrency: Int = 8, lease: Duration = .seconds(60)) throws -> QueueWorker.Configuration {
    var configuration = try fastConfiguration(db, concurrency: concurrency, lease: lease)
    configuration.pollInterval = .seconds(30)
    return configuration
}

@Suite("PostgresQueue control")
struct QueueControlTests {
    @Test func aPausedQueueIsClaimedByNoWorkerNotEvenOneStartedLaterAndResumeRestartsThemWithinASecond() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 24) { db in
            let queue = try await makeQueue(db)
            let ran = LockedBox(0)
            var handlers = JobHandlers()
            handlers.register("work") { (_: Work, _) in ran.withLock { $0 += 1 } }
            let workHandlers = handlers
            let early = try (0..<3).map { _ in
                try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: try slowPollConfiguration(db), logger: db.logger)
            }
            try await withWorkers(early, logger: db.logger) {
                try await queue.enqueue(try NewJob(kind: "work", payload: Work(n: 0)), on: db.client, logger: db.logger)
                try await waitUntil("the workers run a job") { ran.value == 1 }
                // A worker writes completions after the handler returns, in batches: the job is
                // `running` in the table until then.
                try await waitUntil("the first job is completed in the table") { try await stateCounts(db) == ["completed": 1] }
                try await queue.pause("default", on: db.client, logger: db.logger)
                #expect(try await queue.control(of: "default", on: db.client, logger: db.logger).paused)
                try await queue.enqueue((1...20).map { try NewJob(kind: "work", payload: Work(n: $0)) }, on: db.client, logger: db.logger)
                // A worker started while the queue is paused obeys the stored state.
                let late = try QueueWorker(queue: queue, client: db.client, handlers: workHandlers, configuration: try slowPollConfiguration(db), logger: db.logger)
                try await withWorkers([late], logger: db.logger) {
                    // Absence cannot be awaited: watch for a second and a half that nothing is claimed.
                    let counts = LockedBox<[String: Int]>([:])
                    do {
                        try await holdsThroughout(.milliseconds(1500), "nothing is claimed from the paused queue") {
                            let now = try await stateCounts(db)
                            counts.withLock { $0 = now }
                            return now == ["completed": 1, "available": 20]
                        }
                    } catch let failure as TestFailure {
                        throw TestFailure("\(failure) (jobs by state: \(counts.value))")
                    }
                    let resumed = ContinuousClock.now
                    try await queue.resume("default", on: db.client, logger: db.logger)
                    try await waitUntil("every job ran") { ran.value == 21 }
                    // Only the resume message can have woken them this soon (they poll every 30 s).
                    #expect(ContinuousClock.now - resumed < .seconds(2))
                }
            }
            #expect(try await stateCounts(db) == ["completed": 21])
        }
    }

    @Test func aQueuesConcurrencyChangesAtRuntimeForEveryWorker() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 24) { db in
            let queue = try await makeQueue(db)
            let running = LockedBox(0)
            let (release, releaseContinuation) = AsyncStream<Void>.makeStream()
            var handlers = JobHandlers()
            handlers.register("work") { (_: Work, _) in
                running.withLock { $0 += 1 }
                defer { running.withLock { $0 -= 1 } }
                for await _ in release { break }
            }
            try await queue.setConcurrency(2, of: "default", on: db.client, logger: db.logger)
            let worker = try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: try slowPollConfiguration(db, concurrency: 8), logger: db.logger)
            try await withWorkers([worker], logger: db.logger) {
                try await queue.enqueue((0..<10).map { try NewJob(kind: "work", payload: Work(n: $0)) }, on: db.client, logger: db.logger)
                try await waitUntil("two run, as the stored setting says") { running.value == 2 }
                #expect(try await db.scalar("SELECT count(*)::int FROM q.all_jobs WHERE state = 'running'", as: Int.self) == 2)
                try await queue.setConcurrency(5, of: "default", on: db.client, logger: db.logger)
                try await waitUntil("five run after the change") { running.value == 5 }
                #expect(try await db.scalar("SELECT count(*)::int FROM q.all_jobs WHERE state = 'running'", as: Int.self) == 5)
                for _ in 0..<10 { releaseContinuation.yield() }
                releaseContinuation.finish()
                try await waitUntil("all done") { try await stateCounts(db) == ["completed": 10] }
            }
            await #expect(throws: PostgresLocksError.self) { try await queue.setConcurrency(0, of: "default", on: db.client, logger: db.logger) }
        }
    }

    @Test func cancellingARunningJobCancelsItsTaskWithinASecond() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try await makeQueue(db)
            let started = LockedBox(false)
            let cancelledAt = LockedBox<ContinuousClock.Instant?>(nil)
            var handlers = JobHandlers()
            handlers.register("long") { (_: Work, _) in
                started.withLock { $0 = true }
                do { try await suspendUntilCancelled() } catch { cancelledAt.withLock { $0 = .now }; throw error }
            }
            // A 60 s lease: the heartbeat (every 20 s) cannot be what notices.
            let worker = try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: try slowPollConfiguration(db, lease: .seconds(60)), logger: db.logger)
            try await withWorkers([worker], logger: db.logger) {
                let id = try await queue.enqueue(try NewJob(kind: "long", payload: Work(n: 1)), on: db.client, logger: db.logger).ids[0]
                try await waitUntil("the job runs") { started.value }
                let cancelled = ContinuousClock.now
                #expect(try await queue.cancel(id: id, on: db.client, logger: db.logger))
                try await waitUntil("its task is cancelled") { cancelledAt.value != nil }
                #expect(cancelledAt.value! - cancelled < .seconds(1))
                #expect(try await db.scalar("SELECT state FROM q.all_jobs WHERE id = \(id)", as: String.self) == "cancelled")
            }
        }
    }
}
