import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import PostgresQueue
import Subprocess
import Testing
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Limits held by the claim statement, checked with worker processes: each `pglock queue work`
/// process would run four jobs at once; the database says how many run fleet-wide.
@Suite("PostgresQueue limits across worker processes", .serverSlot)
struct QueueFleetProcessTests {
    @Test func runningAndRateLimitsHoldAcrossThreeWorkerProcesses() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 8) { db in
            let queue = try JobQueue(schema: "q")
            try await queue.migrate(on: db.client, logger: db.logger)
            try await queue.setLimits(JobLimits(kind: "sleep", maxRunning: 3), queue: "default", on: db.client, logger: db.logger)
            let stop = LockedBox(false)
            let (maxRunning, busiestWindow) = try await withThrowingTaskGroup(of: Void.self) { workers in
                for _ in 0..<3 {
                    workers.addTask {
                        _ = try await Subprocess.run(
                            .path(FilePath(try pglockExecutable())),
                            arguments: ["queue", "work", "--database-url", db.settings.redactedURL, "--schema", "q", "--concurrency", "4", "--listen"],
                            input: .none, output: .discarded, error: .discarded
                        ) { execution in
                            try await waitUntil(timeout: .seconds(120), "the test is over") { stop.value }
                            try execution.send(signal: .terminate)
                        }
                    }
                }
                defer { stop.withLock { $0 = true } }
                // Phase 1: at most three running at once, sampled from the database.
                let maxRunning = try await sampleMaximum(db, "SELECT count(*)::int FROM q.all_jobs WHERE state = 'running'") {
                    try await queue.enqueue((0..<90).map { try NewJob(kind: "sleep", payloadJSON: #"{"ms": \#(20 + $0 % 20)}"#) }, on: db.client, logger: db.logger)
                    try await waitUntil(timeout: .seconds(60), "phase 1 is done") { try await db.scalar("SELECT count(*)::int FROM q.all_jobs WHERE state = 'completed'", as: Int.self) == 90 }
                }
                // Phase 2: at most 6 starts in any 300 ms.
                try await queue.setLimits(JobLimits(kind: "sleep", rate: .init(6, per: .milliseconds(300))), queue: "default", on: db.client, logger: db.logger)
                try await queue.enqueue((0..<36).map { _ in try NewJob(kind: "sleep", payloadJSON: #"{"ms": 1}"#, tags: ["rated"]) }, on: db.client, logger: db.logger)
                try await waitUntil(timeout: .seconds(60), "phase 2 is done") { try await db.scalar("SELECT count(*)::int FROM q.all_jobs WHERE state = 'completed'", as: Int.self) == 126 }
                let busiest = try await db.scalar("""
                    SELECT max((SELECT count(*) FROM q.all_jobs j2 WHERE 'rated' = ANY(j2.tags)
                                AND j2.attempted_at > j1.attempted_at - interval '300 milliseconds' AND j2.attempted_at <= j1.attempted_at))::int
                    FROM q.all_jobs j1 WHERE 'rated' = ANY(j1.tags)
                    """, as: Int.self)
                return (maxRunning, busiest)
            }
            #expect(maxRunning <= 3 && maxRunning >= 2, "\(maxRunning) ran at once across three processes with a limit of 3")
            #expect(busiestWindow <= 6, "\(busiestWindow) starts within 300 ms with a rate of 6")
            // The work was shared between the processes.
            #expect(try await db.scalar("SELECT count(DISTINCT lease_owner)::int FROM q.all_jobs", as: Int.self) >= 2)
        }
    }
}
