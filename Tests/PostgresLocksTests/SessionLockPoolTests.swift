import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Testing

/// Granted advisory locks in this database, held by sessions other than the checker's.
private func heldLocks(_ db: TestContext, waiting: Bool = false) async throws -> Int {
    try await db.scalar("""
        SELECT count(*)::int FROM pg_locks
        WHERE locktype = 'advisory' AND granted = \(!waiting) AND pid <> pg_backend_pid()
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """, as: Int.self)
}

/// The pool's server sessions, from `pg_stat_activity`.
private func poolSessions(_ db: TestContext) async throws -> Int {
    try await db.scalar("""
        SELECT count(*)::int FROM pg_stat_activity
        WHERE application_name LIKE 'pglocks-locks %' AND datname = current_database()
        """, as: Int.self)
}

/// Runs `body` with a running pool on the test's database, then shuts the pool down.
private func withPool<T: Sendable>(
    _ db: TestContext,
    connections: Int = 4,
    waitingConnections: Int = 4,
    heartbeat: Duration = .seconds(1),
    responseTimeout: Duration = .seconds(5),
    _ body: @Sendable (SessionLockPool) async throws -> T
) async throws -> T {
    var configuration = SessionLockPool.Configuration(connection: db.settings)
    configuration.connections = connections
    configuration.waitingConnections = waitingConnections
    // A heartbeat's answer can wait behind the statements queued on its session; on a loaded
    // machine (two full suites at once) a one-second limit closed healthy sessions, and their
    // takers failed. Killed sessions are noticed by their sockets closing, whatever the limit.
    configuration.heartbeatInterval = heartbeat
    configuration.responseTimeout = responseTimeout
    let pool = try SessionLockPool(configuration: configuration, logger: db.logger)
    let running = Task { try await pool.run() }
    do {
        let result = try await body(pool)
        running.cancel()
        try await running.value
        return result
    } catch {
        running.cancel()
        _ = await running.result
        throw error
    }
}

@Suite("Session lock pool: many session locks on few connections")
struct SessionLockPoolTests {
    @Test func tenThousandLocksAreHeldAtOnceOverAtMostEightSessionsAndAllReleased() async throws {
        try await TestDatabase.withDatabase { db in
            try await withPool(db) { pool in
                let (holding, failure) = (LockedBox(0), LockedBox<String?>(nil))
                // Tries that do not wait for the lock wait at most a response timeout for the
                // first session: start once the sessions are up (a loaded machine connects slowly).
                try await waitUntil("the pool's four sessions are up") { pool.openSessionCount == 4 }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for worker in 0..<50 {
                        group.addTask {
                            // 200 nested holds per task: each body takes the next key and waits.
                            @Sendable func hold(_ n: Int) async throws {
                                guard n < 200 else {
                                    try await suspendUntilCancelled()
                                    return
                                }
                                try await pool.withLock(.int64(Int64(worker * 200 + n)), wait: .immediately) {
                                    holding.withLock { $0 += 1 }
                                    try await hold(n + 1)
                                }
                            }
                            do {
                                try await hold(0)
                            } catch is CancellationError {
                            } catch {
                                failure.withLock { $0 = "\(error)" }
                                throw error
                            }
                        }
                    }
                    try await waitUntil(timeout: .seconds(120), "10,000 locks are held") {
                        if let failed = failure.value { throw TestFailure("a taker failed: \(failed)") }
                        return holding.value == 10_000
                    }
                    #expect(try await heldLocks(db) == 10_000)
                    #expect(pool.heldCount == 10_000)
                    let sessions = try await poolSessions(db)
                    #expect(sessions <= 8 && sessions == pool.openSessionCount, "\(sessions) sessions")
                    group.cancelAll()
                    try await group.waitForAll()
                }
                try await waitUntil("every lock is released") { try await heldLocks(db) == 0 }
                #expect(pool.heldCount == 0)
            }
        }
    }

    @Test func aSessionCarryingManyLocksDiesAndOnlyItsBodiesAreCancelled() async throws {
        try await TestDatabase.withDatabase { db in
            try await withPool(db) { pool in
                let (started, lost, stillHeld) = (LockedBox(0), LockedBox(Set<Int64>()), LockedBox(0))
                let failure = LockedBox<String?>(nil)
                // Holds go to the live session with the fewest: with all four up, they spread.
                try await waitUntil("the pool's four sessions are up") { pool.openSessionCount == 4 }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for key in Int64(0)..<200 {
                        group.addTask {
                            do {
                                try await pool.withLock(.int64(key)) {
                                    started.withLock { $0 += 1 }
                                    try await suspendUntilCancelled()
                                }
                            } catch let error as PostgresLocksError where error.code == .lockLost {
                                lost.withLock { _ = $0.insert(key) }
                            } catch is CancellationError {
                                stillHeld.withLock { $0 += 1 }
                            } catch {
                                failure.withLock { $0 = "key \(key): \(error)" }
                                throw error
                            }
                        }
                    }
                    try await waitUntil("200 locks are held") {
                        if let failed = failure.value { throw TestFailure("a taker failed: \(failed)") }
                        return started.value == 200
                    }
                    // The server process carrying key 0, and every key it carries.
                    let victim = try await db.scalar("""
                        SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = 0 AND classid = 0
                          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                        """, as: Int32.self)
                    let onVictim = Set(try await db.query("""
                        SELECT (classid::int8 << 32) | objid::int8 FROM pg_locks
                        WHERE locktype = 'advisory' AND granted AND pid = \(victim)
                        """).map { try $0.decode(Int64.self) })
                    #expect(onVictim.count > 10 && onVictim.count < 200, "\(onVictim.count) locks on one session")
                    try await db.query("SELECT pg_terminate_backend(\(victim))")
                    try await waitUntil("every body on the dead session has ended with lockLost") { lost.value.count == onVictim.count }
                    #expect(lost.value == onVictim)
                    // The others still hold, on the other sessions.
                    try await waitUntil("the dead session's locks are gone and the others still held") {
                        try await heldLocks(db) == 200 - onVictim.count
                    }
                    #expect(pool.heldCount == 200 - onVictim.count)
                    group.cancelAll()
                    try await group.waitForAll()
                }
                #expect(stillHeld.value == 200 - lost.value.count)
                try await waitUntil("every lock is released") { try await heldLocks(db) == 0 }
            }
        }
    }

    @Test func contendedTakersWaitOnTheServerOnBoundedWaitingSessionsAndExcludeEachOther() async throws {
        try await TestDatabase.withDatabase { db in
            try await withPool(db, connections: 2, waitingConnections: 2) { pool in
                let key = LockKey.int64(77)
                try await db.withConnections(1) { outside in
                    _ = try await outside[0].query("SELECT pg_advisory_lock(77)", logger: db.logger).collect()
                    let (inside, most, done) = (LockedBox(0), LockedBox(0), LockedBox(0))
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for _ in 0..<6 {
                            group.addTask {
                                try await pool.withLock(key) {
                                    let now = inside.withLock { $0 += 1; return $0 }
                                    most.withLock { $0 = max($0, now) }
                                    // Held until the next taker waits for it on the server
                                    // (holds overlap waits), or every other taker is done.
                                    try await waitUntil("a taker waits behind this holder, or none is left") {
                                        try await heldLocks(db, waiting: true) > 0 || done.value == 5
                                    }
                                    inside.withLock { $0 -= 1 }
                                }
                                done.withLock { $0 += 1 }
                            }
                        }
                        // Two wait on the server (the bound), the rest in this process.
                        try await waitUntil("two takers wait on the server") { try await heldLocks(db, waiting: true) == 2 }
                        try await holdsThroughout(.milliseconds(300), "no more than two wait on the server") {
                            try await heldLocks(db, waiting: true) <= 2
                        }
                        #expect(try await poolSessions(db) <= 4)
                        #expect(done.value == 0)
                        _ = try await outside[0].query("SELECT pg_advisory_unlock(77)", logger: db.logger).collect()
                        try await group.waitForAll()
                    }
                    #expect(done.value == 6)
                    #expect(most.value == 1, "the holders of one key excluded each other")
                }
                try await waitUntil("every lock is released") { try await heldLocks(db) == 0 }
            }
        }
    }

    /// A waiting session's heartbeat would queue behind its lock wait and be taken for
    /// unanswered: a wait many heartbeats long must still end in the lock, not a lost session.
    @Test func aWaitLongerThanManyHeartbeatsEndsInTheLock() async throws {
        try await TestDatabase.withDatabase { db in
            try await withPool(db, connections: 1, waitingConnections: 1, heartbeat: .milliseconds(200), responseTimeout: .milliseconds(200)) { pool in
                try await db.withConnections(1) { outside in
                    _ = try await outside[0].query("SELECT pg_advisory_lock(88)", logger: db.logger).collect()
                    let ran = LockedBox(false)
                    let taker = Task { try await pool.withLock(.int64(88)) { ran.withLock { $0 = true } } }
                    try await waitUntil("the taker waits on the server") { try await heldLocks(db, waiting: true) == 1 }
                    try await holdsThroughout(.seconds(2), "the taker keeps waiting through ten heartbeats") {
                        try await heldLocks(db, waiting: true) == 1 && !ran.value
                    }
                    _ = try await outside[0].query("SELECT pg_advisory_unlock(88)", logger: db.logger).collect()
                    try await withinTimeLimit(.seconds(20), "the taker once the lock is free") { try await taker.value }
                    #expect(ran.value)
                }
            }
        }
    }

    /// Takers queued for the one waiting session each get it in turn as it comes free, even
    /// when a taker ahead of them gives up.
    @Test func takersQueuedForAWaitingSessionGetItInTurn() async throws {
        try await TestDatabase.withDatabase { db in
            try await withPool(db, connections: 1, waitingConnections: 1) { pool in
                try await db.withConnections(1) { outside in
                    for key in 90...93 {
                        _ = try await outside[0].query("SELECT pg_advisory_lock(\(key))", logger: db.logger).collect()
                    }
                    let done = LockedBox<[Int]>([])
                    func taker(_ key: Int) -> Task<Void, any Error> {
                        Task {
                            try await pool.withLock(.int64(Int64(key))) {}
                            done.withLock { $0.append(key) }
                        }
                    }
                    let first = taker(90)
                    try await waitUntil("the first taker waits on the server") { try await heldLocks(db, waiting: true) == 1 }
                    // Each queues before the next starts: their order is the order they came in.
                    var queued: [Task<Void, any Error>] = []
                    for key in 91...93 {
                        queued.append(taker(key))
                        try await waitUntil("the taker of \(key) is queued in the pool") { pool.queuedTakerCount == key - 90 }
                    }
                    let (givesUp, second, third) = (queued[0], queued[1], queued[2])
                    try await holdsThroughout(.milliseconds(300), "only one waits on the server (one waiting session)") {
                        try await heldLocks(db, waiting: true) == 1
                    }
                    givesUp.cancel()
                    await #expect(throws: CancellationError.self) { try await givesUp.value }
                    #expect(pool.queuedTakerCount == 2)
                    for key in [90, 92, 93] {
                        _ = try await outside[0].query("SELECT pg_advisory_unlock(\(key))", logger: db.logger).collect()
                        try await waitUntil("the taker of \(key) got its lock") { done.value.contains(key) }
                    }
                    for task in [first, second, third] { try await task.value }
                    #expect(Set(done.value) == [90, 92, 93])
                }
                try await waitUntil("every lock is released") { try await heldLocks(db) == 0 }
            }
        }
    }

    @Test func beforeAnySessionIsUpATakerIsToldSoWithinItsWait() async throws {
        try await TestDatabase.withDatabase { db in
            // Never run: no session ever connects.
            var configuration = SessionLockPool.Configuration(connection: db.settings)
            configuration.responseTimeout = .milliseconds(300)
            let pool = try SessionLockPool(configuration: configuration, logger: db.logger)
            let now = await #expect(throws: PostgresLocksError.self) { try await pool.withLock(.int64(1), wait: .immediately) {} }
            #expect(now?.code == .connectionLost, "\(String(describing: now))")
            let later = await #expect(throws: PostgresLocksError.self) { try await pool.withLock(.int64(1), wait: .timeout(.milliseconds(200))) {} }
            #expect(later?.code == .lockTimeout, "\(String(describing: later))")
        }
    }

    @Test func twoHoldsOfOneKeyInOneProcessExcludeEachOtherAndSharedOnesShare() async throws {
        try await TestDatabase.withDatabase { db in
            try await withPool(db, connections: 1, waitingConnections: 1) { pool in
                let first = LockedBox(false)
                try await pool.withLock(.int64(5)) {
                    first.withLock { $0 = true }
                    // The same key, from the same process, is not free while it is held here.
                    await #expect(throws: PostgresLocksError.self) {
                        try await pool.withLock(.int64(5), wait: .immediately) {}
                    }
                    let timedOut = await #expect(throws: PostgresLocksError.self) {
                        try await pool.withLock(.int64(5), wait: .timeout(.milliseconds(200))) {}
                    }
                    #expect(timedOut?.code == .lockTimeout)
                }
                try await pool.withLock(.int64(6), mode: .shared) {
                    try await pool.withLock(.int64(6), mode: .shared, wait: .immediately) {
                        // Both on the pool's one carrying session: one row in pg_locks.
                        let held = try await heldLocks(db)
                        #expect(held == 1 && pool.heldCount == 2)
                    }
                }
                #expect(first.value)
                try await waitUntil("every lock is released") { try await heldLocks(db) == 0 }
            }
        }
    }

    @Test func aHandleIsReleasedExactlyOnceOnEveryPath() async throws {
        try await TestDatabase.withDatabase { db in
            try await withPool(db) { pool in
                // Released by its owner.
                let lock = try await pool.acquire(.int64(1))
                #expect(try await heldLocks(db) == 1)
                let lostNow = lock.isLost
                #expect(!lostNow)
                try await lock.release()
                #expect(try await heldLocks(db) == 0)

                // Dropped: released by the pool.
                func takeAndDrop() async throws {
                    let dropped = try await pool.acquire(.int64(2))
                    let key = dropped.key
                    #expect(key == .int64(2))
                }
                try await takeAndDrop()
                try await waitUntil("the dropped lock is released") { try await heldLocks(db) == 0 }

                // Lost with its session: release() says so.
                let doomed = try await pool.acquire(.int64(3))
                let pid = try await db.scalar("""
                    SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = 3
                      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                    """, as: Int32.self)
                try await db.query("SELECT pg_terminate_backend(\(pid))")
                try await waitUntil("the handle knows its lock is lost") { doomed.isLost }
                var lostError: PostgresLocksError?
                do {
                    try await doomed.release()
                } catch let error as PostgresLocksError {
                    lostError = error
                }
                #expect(lostError?.code == .lockLost)

                // Taken again once free.
                let again = try await pool.acquire(.int64(3), wait: .timeout(.seconds(10)))
                try await again.release()
                #expect(pool.heldCount == 0)
            }
        }
    }

    @Test func badPoolSettingsAreRefusedBeforeAnythingIsOpened() throws {
        var configuration = SessionLockPool.Configuration(connection: ConnectionSettings(host: .tcp("127.0.0.1"), user: "nobody"))
        for change in [{ (c: inout SessionLockPool.Configuration) in c.connections = 0 }, { $0.connections = 65 }, { $0.waitingConnections = -1 }, { $0.heartbeatInterval = .zero }] {
            var bad = configuration
            change(&bad)
            #expect(throws: PostgresLocksError.self) { try SessionLockPool(configuration: bad, logger: TestDatabase.logger) }
        }
        configuration.waitingConnections = 0
        #expect(throws: Never.self) { try SessionLockPool(configuration: configuration, logger: TestDatabase.logger) }
    }
}
