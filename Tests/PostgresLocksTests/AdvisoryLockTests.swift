import EphemeralPostgres
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Testing

/// The advisory locks of this test's database held by other sessions than the checker's.
private func advisoryLocksHeld(_ db: TestContext) async throws -> Int {
    try await db.scalar("""
        SELECT count(*)::int FROM pg_locks
        WHERE locktype = 'advisory' AND pid <> pg_backend_pid()
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """, as: Int.self)
}

/// Whether some session waits for an advisory lock in this database.
private func someoneWaits(_ db: TestContext) async throws -> Bool {
    try await db.scalar("""
        SELECT count(*)::int FROM pg_locks
        WHERE locktype = 'advisory' AND NOT granted
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """, as: Int.self) > 0
}

@Suite("Advisory locks")
struct AdvisoryLockTests {
    @Test func transactionLocksGiveMutualExclusionAcrossSixteenConnections() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 34) { db in
            try await db.query("CREATE TABLE counter (n int NOT NULL)")
            try await db.query("INSERT INTO counter VALUES (0)")
            let key = LockKey.hashed("counter")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<16 {
                    group.addTask {
                        for _ in 0..<200 {
                            try await db.client.withAdvisoryLock(key, logger: db.logger) { tx in
                                // Read, then write: no row lock, so only the advisory lock keeps this exact.
                                let n = try await tx.query("SELECT n FROM counter").rows[0].decode(Int.self)
                                try await tx.query("UPDATE counter SET n = \(n + 1)")
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await db.scalar("SELECT n FROM counter", as: Int.self) == 3200)
            #expect(try await advisoryLocksHeld(db) == 0)
        }
    }

    @Test func connectionScopedLocksOnEventLoopExecutorsGiveMutualExclusion() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            try await db.query("CREATE TABLE counter (n int NOT NULL)")
            try await db.query("INSERT INTO counter VALUES (0)")
            let key = LockKey.pair(namespace: 7, id: 1)
            try await db.withConnections(8) { connections in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for connection in connections {
                    group.addTask {
                        try await withTaskExecutorPreference(EventLoopTaskExecutor(connection.eventLoop)) {
                            for _ in 0..<100 {
                                try await connection.withAdvisoryLock(key, logger: db.logger) { tx in
                                    // The preference keeps the work on the connection's event loop thread.
                                    #expect(connection.eventLoop.inEventLoop)
                                    let n = try await tx.query("SELECT n FROM counter").rows[0].decode(Int.self)
                                    try await tx.query("UPDATE counter SET n = \(n + 1)")
                                }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            }
            #expect(try await db.scalar("SELECT n FROM counter", as: Int.self) == 800)
            #expect(try await advisoryLocksHeld(db) == 0)
        }
    }

    @Test func sessionLocksGiveMutualExclusionAndReleaseBeforeTheConnectionReturns() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 40) { db in
            try await db.query("CREATE TABLE counter (n int NOT NULL)")
            try await db.query("INSERT INTO counter VALUES (0)")
            let inside = LockedBox(0)
            let maxInside = LockedBox(0)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<16 {
                    group.addTask {
                        for _ in 0..<25 {
                            try await db.client.withSessionAdvisoryLock(.pair(namespace: 7, id: 1), logger: db.logger) {
                                let now = inside.withLock { $0 += 1; return $0 }
                                maxInside.withLock { $0 = max($0, now) }
                                let n = try await db.scalar("SELECT n FROM counter", as: Int.self)
                                try await db.query("UPDATE counter SET n = \(n + 1)")
                                inside.withLock { $0 -= 1 }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await db.scalar("SELECT n FROM counter", as: Int.self) == 400)
            #expect(maxInside.value == 1)
            #expect(try await advisoryLocksHeld(db) == 0)
        }
    }

    @Test func sharedLocksCoexistAndExcludeExclusive() async throws {
        try await TestDatabase.withDatabase { db in
            let key = LockKey.int64(99)
            try await db.client.withAdvisoryLock(key, mode: .shared, logger: db.logger) { _ in
                // Another shared holder gets in; an exclusive one does not.
                try await db.client.withAdvisoryLock(key, mode: .shared, wait: .immediately, logger: db.logger) { _ in }
                let error = await #expect(throws: PostgresLocksError.self) {
                    try await db.client.withAdvisoryLock(key, mode: .exclusive, wait: .immediately, logger: db.logger) { _ in }
                }
                #expect(error?.code == .lockTimeout)
            }
            // Released by the commit: exclusive is free now.
            try await db.client.withAdvisoryLock(key, wait: .immediately, logger: db.logger) { _ in }
        }
    }

    @Test func tryAndTimeoutGiveUpWithoutRunningTheBodyAndTimeoutWaitsOnTheServer() async throws {
        try await TestDatabase.withDatabase { db in
            let key = LockKey.pair(namespace: 1, id: 2)
            let holder = try await db.makeConnection()
            defer { Task { try? await holder.close() } }
            _ = try await holder.query("SELECT pg_advisory_lock(1, 2)", logger: db.logger).collect()

            let ran = LockedBox(false)
            let tryError = await #expect(throws: PostgresLocksError.self) {
                try await db.client.withAdvisoryLock(key, wait: .immediately, logger: db.logger) { _ in ran.withLock { $0 = true } }
            }
            #expect(tryError?.code == .lockTimeout)

            let clock = ContinuousClock()
            let started = clock.now
            let timeoutError = await #expect(throws: PostgresLocksError.self) {
                try await db.client.withAdvisoryLock(key, wait: .timeout(.milliseconds(300)), logger: db.logger) { _ in ran.withLock { $0 = true } }
            }
            let waited = clock.now - started
            #expect(timeoutError?.code == .lockTimeout)
            #expect(waited >= .milliseconds(290) && waited < .seconds(20), "waited \(waited)")
            #expect(!ran.value)

            let sessionError = await #expect(throws: PostgresLocksError.self) {
                try await db.client.withSessionAdvisoryLock(key, wait: .timeout(.milliseconds(100)), logger: db.logger) { ran.withLock { $0 = true } }
            }
            #expect(sessionError?.code == .lockTimeout)
            #expect(!ran.value)

            // Once released, a timed wait gets it.
            _ = try await holder.query("SELECT pg_advisory_unlock(1, 2)", logger: db.logger).collect()
            try await db.client.withSessionAdvisoryLock(key, wait: .timeout(.seconds(2)), logger: db.logger) { ran.withLock { $0 = true } }
            #expect(ran.value)
            #expect(try await advisoryLocksHeld(db) == 0)
        }
    }

    @Test func timedOutLockLeavesTheCallersTransactionUsable() async throws {
        try await TestDatabase.withDatabase { db in
            let holder = try await db.makeConnection()
            defer { Task { try? await holder.close() } }
            _ = try await holder.query("SELECT pg_advisory_lock(5)", logger: db.logger).collect()
            let value = try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                await #expect(throws: PostgresLocksError.self) {
                    try await tx.advisoryLock(.int64(5), wait: .timeout(.milliseconds(50)))
                }
                // lock_timeout is back to what it was, and the transaction still works.
                #expect(try await tx.query("SHOW lock_timeout").rows[0].decode(String.self) == "0")
                return try await tx.query("SELECT 41 + 1").rows[0].decode(Int.self)
            }
            #expect(value == 42)
        }
    }

    @Test func sessionLocksStackOnOneConnection() async throws {
        try await TestDatabase.withDatabase { db in
            let connection = try await db.makeConnection()
            defer { Task { try? await connection.close() } }
            for _ in 0..<2 { _ = try await connection.query("SELECT pg_advisory_lock(77)", logger: db.logger).collect() }
            _ = try await connection.query("SELECT pg_advisory_unlock(77)", logger: db.logger).collect()
            // Still held once: others cannot take it.
            await #expect(throws: PostgresLocksError.self) {
                try await db.client.withSessionAdvisoryLock(.int64(77), wait: .immediately, logger: db.logger) {}
            }
            _ = try await connection.query("SELECT pg_advisory_unlock(77)", logger: db.logger).collect()
            try await db.client.withSessionAdvisoryLock(.int64(77), wait: .immediately, logger: db.logger) {}
        }
    }

    @Test(arguments: [LockScope.transaction, .session])
    func lockIsReleasedWhenWaiterIsCancelled(scope: LockScope) async throws {
        try await TestDatabase.withDatabase { db in
            let key = LockKey.int64(4242)
            let holder = try await db.makeConnection()
            defer { Task { try? await holder.close() } }
            _ = try await holder.query("SELECT pg_advisory_lock(4242)", logger: db.logger).collect()

            let waiter = Task {
                switch scope {
                case .transaction: try await db.client.withAdvisoryLock(key, logger: db.logger) { _ in }
                case .session: try await db.client.withSessionAdvisoryLock(key, logger: db.logger) {}
                }
            }
            try await waitUntil("the waiter is queued on the server") { try await someoneWaits(db) }
            waiter.cancel()
            let outcome = await waiter.result
            #expect(throws: CancellationError.self) { try outcome.get() }
            try await waitUntil("the server-side wait has ended") { try await !someoneWaits(db) }

            // The holder releases: a third party gets the lock at once (nobody else holds or queues).
            _ = try await holder.query("SELECT pg_advisory_unlock(4242)", logger: db.logger).collect()
            try await db.client.withSessionAdvisoryLock(key, wait: .immediately, logger: db.logger) {}
            #expect(try await advisoryLocksHeld(db) == 0)
        }
    }

    @Test func aCancelledWaitOnADedicatedConnectionEndsByClosingItAndLeavesNoLock() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.withConnections(2) { connections in
                let (holder, waiting) = (connections[0], connections[1])
                _ = try await holder.query("SELECT pg_advisory_lock(4243)", logger: db.logger).collect()
                // No client to cancel the server-side wait from: the transaction carries none.
                let waiter = Task {
                    try await waiting.withAdvisoryLock(.int64(4243), logger: db.logger) { _ in }
                }
                try await waitUntil("the waiter is queued on the server") { try await someoneWaits(db) }
                waiter.cancel()
                let outcome = try await withinTimeLimit(.seconds(10), "the cancelled wait") { await waiter.result }
                #expect(throws: CancellationError.self) { try outcome.get() }
                #expect(waiting.isClosed, "the connection is closed, so it cannot take the lock later")

                // Once the holder releases, the closed session's backend takes the lock, cannot
                // answer, and ends: nothing stays held or queued.
                _ = try await holder.query("SELECT pg_advisory_unlock(4243)", logger: db.logger).collect()
                try await waitUntil("the closed session's wait and lock are gone") {
                    let waits = try await someoneWaits(db)
                    let held = try await advisoryLocksHeld(db)
                    return !waits && held == 0
                }
            }
        }
    }

    @Test func sessionLockNeverSurvivesIntoThePoolWhenTheBodyThrows() async throws {
        struct BodyFailed: Error {}
        try await TestDatabase.withDatabase(maximumConnections: 1) { db in
            await #expect(throws: BodyFailed.self) {
                try await db.client.withSessionAdvisoryLock(.int64(31), logger: db.logger) { throw BodyFailed() }
            }
            // One connection in the pool: this is the same connection's next lease.
            let held = try await db.client.withConnection { connection in
                try await connection.query("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()", logger: db.logger).collect()[0].decode(Int.self)
            }
            #expect(held == 0)
        }
    }

    @Test func lostSessionLockCancelsTheBodyAndThrowsLockLost() async throws {
        try await TestDatabase.withDatabase { (db: TestContext) async throws in
            let key = LockKey.int64(555)
            let bodyCancelled = LockedBox(false)
            let error = await #expect(throws: PostgresLocksError.self) {
                try await withinTimeLimit(.seconds(20), "the guarded call after its session died") {
                    try await db.client.withSessionAdvisoryLock(key, heartbeat: .seconds(1), logger: db.logger) {
                        // This database's holder only: other tests run beside this one on the same server.
                        let pid = try await db.scalar("""
                            SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = 555 AND granted
                              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                            """, as: Int32.self)
                        try await db.query("SELECT pg_terminate_backend(\(pid))")
                        // Wait (cancellably) for the loss to be noticed.
                        do {
                            let (stream, _) = AsyncStream<Never>.makeStream()
                            for await _ in stream {}
                            try Task.checkCancellation()
                        } catch {
                            bodyCancelled.withLock { $0 = true }
                            throw error
                        }
                    }
                }
            }
            #expect(error?.code == .lockLost)
            #expect(bodyCancelled.value)
            // The terminated backend releases its locks as it exits.
            try await waitUntil("the dead session's lock is gone") { try await advisoryLocksHeld(db) == 0 }
        }
    }

    @Test func aLockTakenByPlainSQLOnSeed002sHashBlocksOursOnTheString() async throws {
        try await TestDatabase.withDatabase { db in
            // Seed 002 (Python): int.from_bytes(hashlib.md5(b"payment:order-123").digest()[:8], "big", signed=True)
            let python = LockKey.hashed("payment:order-123").int64Value!
            let other = try await db.makeConnection()
            defer { Task { try? await other.close() } }
            _ = try await other.query("SELECT pg_advisory_lock(\(python))", logger: db.logger).collect()
            let error = await #expect(throws: PostgresLocksError.self) {
                try await db.client.withAdvisoryLock(try LockKey(text: "payment:order-123"), wait: .immediately, logger: db.logger) { _ in }
            }
            #expect(error?.code == .lockTimeout)
        }
    }

    @Test func manyKeysAreAllOrNothing() async throws {
        try await TestDatabase.withDatabase { db in
            let other = try await db.makeConnection()
            defer { Task { try? await other.close() } }
            _ = try await other.query("SELECT pg_advisory_lock(30)", logger: db.logger).collect()
            let keys = (1...50).map { LockRequest(.int64(Int64($0))) }
            await #expect(throws: PostgresLocksError.self) {
                try await db.client.withAdvisoryLocks(keys.shuffled(), wait: .immediately, logger: db.logger) { _ in }
            }
            let timeout = await #expect(throws: PostgresLocksError.self) {
                try await db.client.withAdvisoryLocks(keys.shuffled(), wait: .timeout(.milliseconds(200)), logger: db.logger) { _ in }
            }
            #expect(timeout?.code == .lockTimeout)
            // Only the other session's lock is held: nothing of the 49 free keys stayed locked.
            #expect(try await advisoryLocksHeld(db) == 1)
            _ = try await other.query("SELECT pg_advisory_unlock(30)", logger: db.logger).collect()
            let count = try await db.client.withAdvisoryLocks(keys + [LockRequest(.int64(3), mode: .shared)], logger: db.logger) { tx in
                try await tx.query("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND mode = 'ExclusiveLock'").rows[0].decode(Int.self)
            }
            #expect(count == 50)
        }
    }

    @Test func workersLockingRandomKeySetsInRandomOrderNeverDeadlock() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 16) { db in
            let deadlocks = LockedBox(0)
            let transactions = LockedBox(0)
            let deadline = ContinuousClock.now + .seconds(20)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        while ContinuousClock.now < deadline {
                            let keys = (0..<Int.random(in: 2...20)).map { _ in
                                LockRequest(Bool.random() ? .int64(Int64.random(in: 0..<40)) : .pair(namespace: 1, id: Int32.random(in: 0..<40)),
                                            mode: Int.random(in: 0..<4) == 0 ? .shared : .exclusive)
                            }
                            do {
                                try await db.client.withAdvisoryLocks(keys, logger: db.logger) { tx in
                                    try await tx.query("SELECT 1")
                                }
                                transactions.withLock { $0 += 1 }
                            } catch let error as PostgresLocksError where error.code == .deadlock {
                                deadlocks.withLock { $0 += 1 }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(deadlocks.value == 0)
            #expect(transactions.value >= 8, "every worker should get work done")
            #expect(try await advisoryLocksHeld(db) == 0)
        }
    }

    @Test func normalizeDeduplicatesMergesAndSorts() {
        let requests = [
            LockRequest(.pair(namespace: 1, id: 1)), LockRequest(.int64(5), mode: .shared), LockRequest(.int64(-3)),
            LockRequest(.int64(5)), LockRequest(.int64(-3), mode: .shared), LockRequest(.int64(9), mode: .shared),
        ]
        #expect(LockRequest.normalize(requests) == [
            LockRequest(.int64(-3)), LockRequest(.int64(5)), LockRequest(.int64(9), mode: .shared), LockRequest(.pair(namespace: 1, id: 1)),
        ])
    }

    @Test func emptyAndOversizedKeySetsAreRejected() async throws {
        try await TestDatabase.withDatabase { db in
            for keys in [[], (0...Transaction.maximumKeysPerCall).map { LockRequest(.int64(Int64($0))) }] {
                let error = await #expect(throws: PostgresLocksError.self) {
                    try await db.client.withAdvisoryLocks(keys, logger: db.logger) { _ in }
                }
                #expect(error?.code == .invalidArgument)
            }
        }
    }

    @Test func environmentCheckAcceptsARealServer() async throws {
        try await TestDatabase.withDatabase { db in
            let environment = try await db.client.checkAdvisoryLockEnvironment(logger: db.logger)
            #expect(environment.sessionIsStable)
            #expect(environment.advisoryLocksExclude == true)
        }
    }

    @Test func fullLockTableGivesATypedErrorWithAdvice() async throws {
        // A server of its own: filling the shared lock table would disturb other tests.
        try await EphemeralPostgres.withServer(.init(maxConnections: 10, maxLocksPerTransaction: 10, disableDurability: true)) { server in
            let client = PostgresClient(configuration: server.clientConfiguration(), backgroundLogger: TestDatabase.backgroundLogger)
            await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                let keys = (0..<5000).map { LockRequest(.int64(Int64($0))) }
                let error = await #expect(throws: PostgresLocksError.self) {
                    try await client.withAdvisoryLocks(keys, logger: TestDatabase.logger) { _ in }
                }
                #expect(error?.code == .lockTableFull)
                #expect(error?.hint?.contains("max_locks_per_transaction") == true)
            }
        }
    }
}
