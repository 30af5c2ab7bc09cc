import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
@testable import PostgresQueue
import ServiceLifecycle
import Testing

@Suite("PostgresQueue: claims after a cursor")
struct QueueClaimCursorTests {
    @Test func aBoundedClaimTakesOnlyJobsAfterThePositionAndAFullOneFindsTheRest() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let queue = try await makeQueue(db)
            func claim(_ limit: Int, after position: ClaimCursor.Position?) async throws -> [ClaimedJob] {
                try await queue.claim(from: "default", limit: limit, lease: .seconds(30), owner: "t", after: position, on: db.client, logger: db.logger)
            }
            // One statement: three jobs with the same run time (the transaction's now()), told
            // apart by id.
            try await queue.enqueue((1...3).map { try NewJob(kind: "work", payload: Work(n: $0)) }, on: db.client, logger: db.logger)
            let first = try await claim(1, after: nil)
            #expect(first.count == 1)
            // The run time went through Date and back: the bound still takes the two after it.
            let next = try await claim(10, after: first[0].claimPosition)
            #expect(next.map(\.id).sorted() == [first[0].id + 1, first[0].id + 2])
            let cursor = next.map(\.claimPosition).max()!

            // A job of a higher priority sorts before the cursor; a plain one after it.
            try await queue.enqueue(try NewJob(kind: "work", payload: Work(n: 4), priority: -1), on: db.client, logger: db.logger)
            try await queue.enqueue(try NewJob(kind: "work", payload: Work(n: 5)), on: db.client, logger: db.logger)
            let bounded = try await claim(10, after: cursor)
            #expect(try bounded.map { try $0.decodePayload(as: Work.self).n } == [5])
            let full = try await claim(10, after: nil)
            #expect(try full.map { try $0.decodePayload(as: Work.self).n } == [4])
            #expect(try await stateCounts(db) == ["running": 5])
        }
    }

    @Test func aHigherPriorityJobIsPickedUpWhileAWorkerWorksThroughABacklog() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try await makeQueue(db)
            let backlogDone = LockedBox(0)
            let urgentRan = LockedBox<(at: ContinuousClock.Instant, backlogDone: Int)?>(nil)
            var handlers = JobHandlers()
            handlers.register("work") { (work: Work, _) in
                // Each backlog job does a round trip to the server, so that the backlog takes a while.
                _ = try await db.scalar("SELECT \(work.n)::int", as: Int.self)
                backlogDone.withLock { $0 += 1 }
            }
            handlers.register("urgent") { (_: Work, _) in
                let done = backlogDone.value
                urgentRan.withLock { $0 = (ContinuousClock.now, done) }
            }
            var configuration = try fastConfiguration(db, concurrency: 8)
            configuration.pollInterval = .seconds(30)  // only the worker's own claims find the job
            let worker = try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: configuration, logger: db.logger)
            let backlog = 20_000
            try await queue.enqueue((0..<backlog).map { try NewJob(kind: "work", payload: Work(n: $0)) }, on: db.client, logger: db.logger)
            let (enqueuedAt, ran) = try await withWorkers([worker], logger: db.logger) {
                // The cursor has moved well into the backlog.
                try await waitUntil("200 backlog jobs are done") { backlogDone.value >= 200 }
                let enqueuedAt = ContinuousClock.now
                try await queue.enqueue(try NewJob(kind: "urgent", payload: Work(n: -1), priority: -10), on: db.client, logger: db.logger)
                try await waitUntil("the urgent job runs") { urgentRan.value != nil }
                return (enqueuedAt, urgentRan.value!)
            }
            // Found by a periodic full scan (bounded claims never reach it) while the backlog
            // still had most of its jobs, within about the full-scan interval.
            #expect(ran.backlogDone < backlog / 2, "the urgent job waited for the backlog: \(ran.backlogDone) done first")
            #expect(ran.at - enqueuedAt < .seconds(5), "picked up after \(ran.at - enqueuedAt)")
        }
    }
}
