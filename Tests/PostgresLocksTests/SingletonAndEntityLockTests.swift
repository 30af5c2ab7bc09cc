import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Testing

@Suite("Singleton jobs and per-entity serialization")
struct SingletonAndEntityLockTests {
    /// Whether `call` threw `lockTimeout`: the job was running elsewhere and did not run here.
    static func isNotRun(_ call: () async throws -> String) async -> Bool {
        do {
            _ = try await call()
            return false
        } catch let error as PostgresLocksError {
            return error.code == .lockTimeout
        } catch {
            return false
        }
    }

    @Test func ofTenConcurrentCallersExactlyOneRunsAtATime() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 24) { db in
            let running = LockedBox((now: 0, most: 0, runs: 0))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<10 {
                    group.addTask {
                        try await db.client.runSingleton("nightly-report", wait: .forever, logger: db.logger) {
                            running.withLock { $0.now += 1; $0.most = max($0.most, $0.now); $0.runs += 1 }
                            // Real work on the database while holding the job lock.
                            try await db.query("SELECT count(*) FROM generate_series(1, 20000)")
                            running.withLock { $0.now -= 1 }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(running.value.most == 1)
            #expect(running.value.runs == 10)
        }
    }

    @Test func callersFindingTheJobRunningSkipIt() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 24) { db in
            let (release, releaseContinuation) = AsyncStream<Void>.makeStream()
            let (started, startedContinuation) = AsyncStream<Void>.makeStream()
            let first = Task {
                try await db.client.runSingleton("import", logger: db.logger) {
                    startedContinuation.yield()
                    for await _ in release { break }
                    return "done"
                }
            }
            for await _ in started { break }
            let skipped = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<9 {
                    group.addTask {
                        await Self.isNotRun { try await db.client.runSingleton("import", logger: db.logger) { "ran" } }
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(skipped == 9)
            // A timeout gives up while the job still runs.
            #expect(await Self.isNotRun { try await db.client.runSingleton("import", wait: .timeout(.milliseconds(100)), logger: db.logger) { "ran" } })
            releaseContinuation.yield()
            #expect(try await first.value == "done")
            // Free again: the next caller runs it.
            #expect(try await db.client.runSingleton("import", logger: db.logger) { "ran" } == "ran")
            await #expect(throws: PostgresLocksError.self) {
                try await db.client.runSingleton("", logger: db.logger) { 1 }
            }
        }
    }

    @Test func entityLocksSerializePerEntityAndLetDifferentEntitiesOverlap() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 20) { db in
            try await db.query("CREATE TABLE balances (account int PRIMARY KEY, n int NOT NULL)")
            try await db.query("INSERT INTO balances SELECT g, 0 FROM generate_series(1, 4) g")
            let inside = LockedBox((now: [Int32: Int](), mostPerEntity: 0, mostOverall: 0))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<16 {
                    let account = Int32(worker % 4 + 1)
                    group.addTask {
                        for _ in 0..<25 {
                            try await db.client.withAdvisoryLock(.pair(namespace: 42, id: account), logger: db.logger) { tx in
                                inside.withLock { state in
                                    state.now[account, default: 0] += 1
                                    state.mostPerEntity = max(state.mostPerEntity, state.now[account]!)
                                    state.mostOverall = max(state.mostOverall, state.now.values.reduce(0, +))
                                }
                                // Read, then write: only the entity lock keeps this exact.
                                let n = try await tx.query("SELECT n FROM balances WHERE account = \(account)").rows[0].decode(Int.self)
                                try await tx.query("UPDATE balances SET n = \(n + 1) WHERE account = \(account)")
                                inside.withLock { $0.now[account, default: 0] -= 1 }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let totals = try await db.query("SELECT n FROM balances ORDER BY account").map { try $0.decode(Int.self) }
            #expect(totals == [100, 100, 100, 100])
            #expect(inside.value.mostPerEntity == 1)
            #expect(inside.value.mostOverall > 1, "different entities should run in parallel")
        }
    }
}
