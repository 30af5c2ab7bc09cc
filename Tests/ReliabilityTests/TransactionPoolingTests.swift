import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import PostgresQueue
import Subprocess
import Synchronization
import Testing
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// The library through a real PgBouncer: transaction pooling is detected (even with an idle
/// pool), transaction-scoped features work with default settings, and session-scoped ones
/// refuse before taking anything; in session mode session locks work and exclude.
@Suite("Through PgBouncer", .enabled(if: TestPgBouncer.isAvailable, "needs pgbouncer and the throwaway server"))
struct TransactionPoolingTests {
    private static func advisoryLocksHeld(_ pooled: PoolerContext) async throws -> Int {
        let direct = try await pooled.makeDirectConnection()
        let count = try await direct.query("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", logger: pooled.logger).collect()[0].decode(Int.self)
        try? await direct.close()
        return count
    }

    @Test func transactionPoolingIsDetectedWithAnIdlePool() async throws {
        // An idle pool with many server connections: the pid-changes-between-transactions check
        // sees the same process every time; the probe does not.
        try await TestPgBouncer.withPooler(mode: .transaction, poolSize: 20) { pooled in
            for _ in 0..<3 {
                _ = try await pooled.client.withConnection { connection in
                    try await connection.query("SELECT 1", logger: pooled.logger).collect()
                }
            }
            #expect(await pooled.client.connectionPooling(logger: pooled.logger) == .transactionPooling)
            let environment = try await pooled.client.inspectAdvisoryLockEnvironment(logger: pooled.logger)
            #expect(environment.pooling == .transactionPooling)
            #expect(!environment.sessionIsStable)
            #expect(try await Self.advisoryLocksHeld(pooled) == 0)  // the probe left nothing behind
        }
    }

    @Test func aSessionLockPoolRefusesTransactionPoolingAndTakesNothing() async throws {
        try await TestPgBouncer.withPooler(mode: .transaction, poolSize: 5) { pooled in
            let pool = try SessionLockPool(configuration: .init(connection: pooled.settings), logger: pooled.logger)
            let error = await #expect(throws: PostgresLocksError.self) { try await pool.run() }
            #expect(error?.code == .transactionPooling, "\(String(describing: error))")
            // A taker is told the pool stopped, at once, whatever its wait.
            let taker = await #expect(throws: PostgresLocksError.self) { try await pool.withLock(.int64(1)) {} }
            #expect(taker?.code == .transactionPooling, "\(String(describing: taker))")
            #expect(try await Self.advisoryLocksHeld(pooled) == 0)
        }
    }

    @Test func semaphoresInATransactionWorkThroughTransactionPoolingAndSessionOnesRefuse() async throws {
        try await TestPgBouncer.withPooler(mode: .transaction, poolSize: 5) { pooled in
            let (client, logger) = (pooled.client, pooled.logger)
            let inside = LockedBox(0)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        for _ in 0..<10 {
                            try await client.withSemaphore("pooled", permits: 2, logger: logger) { tx in
                                let holders = try await tx.query("""
                                    SELECT count(*)::int FROM pg_locks
                                    WHERE locktype = 'advisory' AND granted
                                      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                                    """).rows[0].decode(Int.self)
                                inside.withLock { $0 = max($0, holders) }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(inside.value >= 1 && inside.value <= 2, "at most 2 holders; saw \(inside.value)")
            let refused = await #expect(throws: PostgresLocksError.self) {
                try await client.withSessionSemaphore("pooled", permits: 2, logger: logger) {}
            }
            #expect(refused?.code == .transactionPooling, "\(String(describing: refused))")
            #expect(try await Self.advisoryLocksHeld(pooled) == 0)
        }
    }

    @Test func sessionPoolingIsNotMistakenForTransactionPooling() async throws {
        try await TestPgBouncer.withPooler(mode: .session, poolSize: 5) { pooled in
            #expect(await pooled.client.connectionPooling(logger: pooled.logger) == .sessionPerConnection)
            let environment = try await pooled.client.checkAdvisoryLockEnvironment(logger: pooled.logger)
            #expect(environment.supportsSessionLocks)
        }
    }

    @Test func sessionLocksWorkAndExcludeThroughSessionPooling() async throws {
        try await TestPgBouncer.withPooler(mode: .session, poolSize: 5) { pooled in
            let logger = pooled.logger
            let client = pooled.client
            let holding = OneShot()
            let release = OneShot()
            async let holder: Void = client.withSessionAdvisoryLock(.hashed("report"), logger: logger) {
                holding.fire()
                await release.wait()
            }
            await holding.wait()
            await #expect {
                try await client.withSessionAdvisoryLock(.hashed("report"), wait: .immediately, logger: logger) {}
            } throws: { ($0 as? PostgresLocksError)?.code == .lockTimeout }
            #expect(try await Self.advisoryLocksHeld(pooled) == 1)
            release.fire()
            try await holder
            #expect(try await Self.advisoryLocksHeld(pooled) == 0)
            #expect(try await client.runSingleton("nightly", logger: logger) { 7 } == 7)
        }
    }

    @Test func sessionFeaturesRefuseUnderTransactionPoolingAndRunNothing() async throws {
        try await TestPgBouncer.withPooler(mode: .transaction, poolSize: 4) { pooled in
            let logger = pooled.logger
            let ran = Flag()
            for wait in [LockWait.forever, .immediately, .timeout(.seconds(1))] {
                await #expect {
                    try await pooled.client.withSessionAdvisoryLock(.hashed("job:y"), wait: wait, logger: logger) { ran.set() }
                } throws: { error in
                    guard let error = error as? PostgresLocksError, error.code == .transactionPooling else { return false }
                    return error.message.contains("transaction-pooling") && (error.hint ?? "").contains("pool_mode = session")
                }
            }
            await #expect {
                _ = try await pooled.client.runSingleton("nightly", logger: logger) { ran.set() }
            } throws: { ($0 as? PostgresLocksError)?.code == .transactionPooling }
            #expect(!ran.isSet)
            #expect(try await Self.advisoryLocksHeld(pooled) == 0)

            // A leader election refuses too, permanently, and never leads.
            let election = try LeaderElection(configuration: .init(name: "pooled", connection: pooled.settings), logger: logger)
            await #expect {
                try await election.run()
            } throws: { ($0 as? PostgresLocksError)?.code == .transactionPooling }
            #expect(!election.isLeader)
        }
    }

    @Test func transactionScopedFeaturesWorkThroughTransactionPooling() async throws {
        try await TestPgBouncer.withPooler(mode: .transaction, poolSize: 6, maximumConnections: 8) { pooled in
            let client = pooled.client
            let logger = pooled.logger
            #expect(await client.connectionPooling(logger: logger) == .transactionPooling)
            try await client.checkedQuery("CREATE TABLE hits (k int, n int)", logger: logger)
            let counter = try GaplessCounter(table: "numbers")
            try await counter.migrate(on: client, logger: logger)
            try await client.checkedQuery("CREATE TABLE versions (scope text, n int8, UNIQUE (scope, n))", logger: logger)

            // 8 tasks: xact locks on 4 keys guarding read-modify-write, many keys, gapless numbers
            // in retrying transactions.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<8 {
                    group.addTask {
                        for round in 0..<25 {
                            let key = Int32((task + round) % 4)
                            try await client.withAdvisoryLock(.pair(namespace: 7, id: key), logger: logger) { tx in
                                let seen = try await tx.query("SELECT count(*)::int FROM hits WHERE k = \(key)").rows[0].decode(Int.self)
                                try await tx.query("INSERT INTO hits VALUES (\(key), \(seen + 1))")
                            }
                            try await client.withAdvisoryLocks([LockRequest(.int64(1)), LockRequest(.int64(2)), LockRequest(.int64(Int64(3 + task)))], logger: logger) { _ in }
                            try await client.withRetryingTransaction(logger: logger) { tx in
                                let scope = "s\(round % 3)"
                                let n = try await counter.next(scope: scope, in: tx)
                                try await tx.query("INSERT INTO versions VALUES (\(scope), \(n))")
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            // Under each key's lock, the nth writer saw n-1 rows: no duplicate n per key.
            let duplicates = try await pooled.scalar("SELECT count(*)::int FROM (SELECT k, n FROM hits GROUP BY k, n HAVING count(*) > 1) d", as: Int.self)
            #expect(duplicates == 0)
            #expect(try await pooled.scalar("SELECT count(*)::int FROM hits", as: Int.self) == 200)
            // Gapless: each scope is exactly 1…count.
            let gaps = try await pooled.scalar("SELECT count(*)::int FROM (SELECT scope FROM versions GROUP BY scope HAVING max(n) <> count(*)) g", as: Int.self)
            #expect(gaps == 0)
            #expect(try await pooled.scalar("SELECT count(*)::int FROM versions", as: Int.self) == 200)
            // The library ran nothing prepared across transactions, and left no lock behind.
            #expect(try await Self.advisoryLocksHeld(pooled) == 0)
        }
    }

    @Test func queueWorksThroughTransactionPoolingAndPollsInsteadOfListening() async throws {
        try await TestPgBouncer.withPooler(mode: .transaction, poolSize: 6, maximumConnections: 8) { pooled in
            let client = pooled.client
            let logger = pooled.logger
            let queue = try JobQueue(schema: "jobs")
            try await queue.migrate(on: client, logger: logger)
            for index in 0..<40 {
                try await queue.enqueue(try NewJob(kind: "work", payload: index, uniqueKey: "job-\(index)"), on: client, logger: logger)
            }
            let done = Counter()
            var handlers = JobHandlers()
            handlers.register("work") { (_: Int, _) in done.add() }
            let worker = try QueueWorker(queue: queue, client: client, handlers: handlers, configuration: .init(
                pollInterval: .milliseconds(100),
                listen: pooled.settings
            ), logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await worker.run() }
                try await waitUntil(timeout: .seconds(60), "every job completed") {
                    try await queue.stats(on: client, logger: logger).queues.first?.counts["completed"] == 40
                }
                group.cancelAll()
            }
            #expect(done.value == 40)
        }
    }
}

/// A signal fired once, awaited by others.
private final class OneShot: Sendable {
    private let stream = AsyncStream<Void>.makeStream()
    func fire() { stream.continuation.finish() }
    func wait() async { for await _ in stream.stream {} }
}

private final class Flag: Sendable {
    private let state = Mutex(false)
    func set() { state.withLock { $0 = true } }
    var isSet: Bool { state.withLock { $0 } }
}

private final class Counter: Sendable {
    private let state = Mutex(0)
    func add() { state.withLock { $0 += 1 } }
    var value: Int { state.withLock { $0 } }
}

/// `pglock` through a real PgBouncer: `run` refuses and runs nothing, `doctor` names the
/// pooler, `demo` runs what can work and skips the rest.
@Suite("pglock through PgBouncer", .enabled(if: TestPgBouncer.isAvailable, "needs pgbouncer and the throwaway server"))
struct PoolerCommandTests {
    @Test func concurrentRunsOnOneKeyAllRefuseAndNoneRunsItsCommand() async throws {
        try await TestPgBouncer.withPooler(mode: .transaction, poolSize: 20) { pooled in
            let marker = FileManager.default.temporaryDirectory.appendingPathComponent("pglock-ran-\(UInt32.random(in: 0...UInt32.max))").path
            defer { try? FileManager.default.removeItem(atPath: marker) }
            let url = pooled.settings.redactedURL
            let results = try await withThrowingTaskGroup(of: (Int32, String).self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        try await runPglock(["run", "--lock", "job:y", "--database-url", url, "--", "sh", "-c", "echo ran >> \(marker)"])
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for (status, output) in results {
                #expect(status == 78, "\(output)")
                #expect(output.contains("transaction-pooling"))
            }
            #expect(!FileManager.default.fileExists(atPath: marker), "a command ran without its lock")
            let direct = try await pooled.makeDirectConnection()
            let held = try await direct.query("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", logger: pooled.logger).collect()[0].decode(Int.self)
            try? await direct.close()
            #expect(held == 0)
        }
    }

    @Test func doctorNamesTransactionPooling() async throws {
        try await TestPgBouncer.withPooler(mode: .transaction, poolSize: 20) { pooled in
            let (status, output) = try await runPglock(["doctor", "--database-url", pooled.settings.redactedURL])
            #expect(status == 0, "\(output)")
            #expect(output.contains("transaction pooling (PgBouncer"), "\(output)")
            #expect(output.contains("advisory locks exclude") && !output.contains("FAIL"), "\(output)")
        }
    }

    @Test func doctorSeesSessionPoolingAsASessionPerConnection() async throws {
        try await TestPgBouncer.withPooler(mode: .session, poolSize: 5) { pooled in
            let (status, output) = try await runPglock(["doctor", "--database-url", pooled.settings.redactedURL])
            #expect(status == 0, "\(output)")
            #expect(output.contains("PgBouncer") && output.contains("session mode"), "\(output)")
        }
    }

    @Test func demoThroughTransactionPoolingRunsWhatWorksThereAndSkipsTheRest() async throws {
        try await afterTheOtherTests()  // the demo loads the machine: let timing-bound tests finish first
        try await TestPgBouncer.withPooler(mode: .transaction, poolSize: 30) { pooled in
            let (status, output) = try await runPglock(["demo", "--database-url", pooled.settings.redactedURL])
            #expect(status == 0, "\(output)")
            #expect(output.contains("skipped: needs a session (transaction pooling detected)"), "\(output)")
            #expect(!output.contains("FAIL"), "\(output)")
            #expect(!output.contains("26000"), "\(output)")
        }
    }
}

/// Runs the built `pglock` with `arguments`; returns its exit status and everything it printed.
private func runPglock(_ arguments: [String]) async throws -> (Int32, String) {
    let result = try await Subprocess.run(
        .path(FilePath(try pglockExecutable())),
        arguments: Arguments(arguments),
        output: .string(limit: 1 << 20), error: .string(limit: 1 << 20)
    )
    guard case .exited(let code) = result.terminationStatus else { return (-1, result.standardOutput) }
    return (code, result.standardOutput + result.standardError)
}
