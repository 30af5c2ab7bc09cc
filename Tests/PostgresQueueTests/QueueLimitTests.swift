import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import PostgresQueue
import ServiceLifecycle
import Testing

@Suite("PostgresQueue fleet limits")
struct QueueLimitTests {
    @Test func aKindsRunningLimitHoldsAcrossSixWorkersWhileOtherKindsRunFreely() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 40) { db in
            let queue = try await makeQueue(db)
            try await queue.setLimits(JobLimits(kind: "limited", maxRunning: 3), queue: "default", on: db.client, logger: db.logger)
            var handlers = JobHandlers()
            // Each job runs until the sampler of its kind has seen it running.
            let limitedSamples = LockedBox(0), freeSamples = LockedBox(0)
            handlers.register("limited") { (_: Work, _) in try await waitUntilSampled(limitedSamples) }
            handlers.register("free") { (_: Work, _) in try await waitUntilSampled(freeSamples) }
            let workers = try (0..<6).map { index in
                try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: try fastConfiguration(db, concurrency: 8, owner: "w\(index)"), logger: db.logger)
            }
            let limitedJobs = (0..<60).map { try! NewJob(kind: "limited", payload: Work(n: $0)) }
            let freeJobs = (0..<60).map { try! NewJob(kind: "free", payload: Work(n: $0)) }
            let (maxLimited, maxFree) = try await withWorkers(workers, logger: db.logger) {
                let maxFree = LockedBox(0)
                let maxLimited = try await sampleMaximum(db, "SELECT count(*)::int FROM q.all_jobs WHERE state = 'running' AND kind = 'limited'", samples: limitedSamples) {
                    maxFree.withLock { _ in }
                    let free = try await sampleMaximum(db, "SELECT count(*)::int FROM q.all_jobs WHERE state = 'running' AND kind = 'free'", samples: freeSamples) {
                        try await queue.enqueue(limitedJobs + freeJobs, on: db.client, logger: db.logger)
                        try await waitUntil("every job is done") { try await stateCounts(db) == ["completed": 120] }
                    }
                    maxFree.withLock { $0 = free }
                }
                return (maxLimited, maxFree.value)
            }
            #expect(maxLimited <= 3, "the kind ran \(maxLimited) at once with a limit of 3")
            #expect(maxLimited >= 2, "the limit was never approached: \(maxLimited)")
            #expect(maxFree > 3, "the unlimited kind was held back too: \(maxFree)")
        }
    }

    @Test func aQueueWideRunningLimitHoldsAcrossKinds() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 40) { db in
            let queue = try await makeQueue(db)
            try await queue.setLimits(JobLimits(maxRunning: 4), queue: "default", on: db.client, logger: db.logger)
            var handlers = JobHandlers()
            // Each job runs until the sampler has seen it running.
            let samples = LockedBox(0)
            for kind in ["a", "b", "c"] {
                handlers.register(kind) { (_: Work, _) in try await waitUntilSampled(samples) }
            }
            let workers = try (0..<4).map { index in
                try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: try fastConfiguration(db, concurrency: 8, owner: "w\(index)"), logger: db.logger)
            }
            let maximum = try await withWorkers(workers, logger: db.logger) {
                try await sampleMaximum(db, "SELECT count(*)::int FROM q.all_jobs WHERE state = 'running'", samples: samples) {
                    try await queue.enqueue((0..<90).map { try NewJob(kind: ["a", "b", "c"][$0 % 3], payload: Work(n: $0)) }, on: db.client, logger: db.logger)
                    try await waitUntil("every job is done") { try await stateCounts(db) == ["completed": 90] }
                }
            }
            #expect(maximum <= 4 && maximum >= 2, "\(maximum) ran at once with a queue limit of 4")
            // Lifting the limit lets the fast claim take the queue again.
            try await queue.removeLimits(queue: "default", on: db.client, logger: db.logger)
            let control = try await queue.control(of: "default", on: db.client, logger: db.logger)
            #expect(!control.limited && control.limits.isEmpty)
        }
    }

    @Test func aRateLimitAllowsAtMostNStartsInAnyWindow() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 24) { db in
            let queue = try await makeQueue(db)
            try await queue.setLimits(JobLimits(kind: "rated", rate: .init(5, per: .milliseconds(400))), queue: "default", on: db.client, logger: db.logger)
            var handlers = JobHandlers()
            handlers.register("rated") { (_: Work, _) in }
            let workers = try (0..<3).map { index in
                try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: try fastConfiguration(db, owner: "w\(index)"), logger: db.logger)
            }
            try await withWorkers(workers, logger: db.logger) {
                try await queue.enqueue((0..<20).map { try NewJob(kind: "rated", payload: Work(n: $0)) }, on: db.client, logger: db.logger)
                try await waitUntil("every job is done") { try await stateCounts(db) == ["completed": 20] }
                // Starts older than every window are pruned by the workers' maintenance.
                try await waitUntil("the start records are pruned") { try await db.scalar("SELECT count(*)::int FROM q.starts", as: Int.self) == 0 }
            }
            // For every start, the starts in the 400 ms ending at it.
            let busiest = try await db.scalar("""
                SELECT max((SELECT count(*) FROM q.all_jobs j2
                            WHERE j2.attempted_at > j1.attempted_at - interval '400 milliseconds' AND j2.attempted_at <= j1.attempted_at))::int
                FROM q.all_jobs j1
                """, as: Int.self)
            #expect(busiest <= 5, "\(busiest) starts within 400 ms with a rate of 5")
            let span = try await db.scalar("SELECT EXTRACT(EPOCH FROM max(attempted_at) - min(attempted_at))::float8 FROM q.all_jobs", as: Double.self)
            #expect(span >= 1.2, "20 starts at 5 per 400 ms took \(span) s")
        }
    }

    @Test func twentyConcurrentClaimsOfALimitedQueueTakeNoMoreThanTheLimit() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 24) { db in
            let queue = try await makeQueue(db)
            // A queue-wide limit, and claimers that each work a different kind: no two of them
            // would pick the same jobs, so only the claim lock keeps them within the limit.
            try await queue.setLimits(JobLimits(maxRunning: 3), queue: "default", on: db.client, logger: db.logger)
            let kinds = (0..<20).map { "k\($0)" }
            try await queue.enqueue((0..<400).map { try NewJob(kind: kinds[$0 % 20], payload: Work(n: $0)) }, on: db.client, logger: db.logger)
            for round in 0..<3 {
                // Twenty claims at once, each asking for ten: the limit leaves room for three in all.
                let claimed = try await withThrowingTaskGroup(of: [ClaimedJob].self) { group in
                    for index in 0..<20 {
                        group.addTask {
                            try await queue.claim(from: "default", kinds: [kinds[index]], limit: 10, lease: .seconds(30), owner: "c\(index)", on: db.client, logger: db.logger)
                        }
                    }
                    return try await group.reduce(into: [ClaimedJob]()) { $0 += $1 }
                }
                #expect(claimed.count == 3, "round \(round): \(claimed.count) claimed with a limit of 3")
                #expect(try await db.scalar("SELECT count(*)::int FROM q.all_jobs WHERE state = 'running'", as: Int.self) == 3)
                #expect(try await queue.complete(claimed.map(\.lease), on: db.client, logger: db.logger).isEmpty)
            }
        }
    }

    @Test func badLimitsAreRefusedWithTypedErrors() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let queue = try await makeQueue(db)
            for limits in [JobLimits(kind: "k"), JobLimits(maxRunning: 0), JobLimits(rate: .init(0, per: .seconds(1))), JobLimits(rate: .init(1, per: .zero)), JobLimits(kind: "", maxRunning: 1)] {
                await #expect(throws: PostgresLocksError.self) { try await queue.setLimits(limits, queue: "default", on: db.client, logger: db.logger) }
            }
            #expect(try await queue.control(of: "default", on: db.client, logger: db.logger) == .unchanged("default"))
        }
    }
}
