import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Testing

/// A count over `pg_locks` of this database's advisory locks on `semaphore`'s permits:
/// `granted` ones (holders) or not (waiters).
private func permitLocks(_ semaphore: AdvisorySemaphore, granted: Bool) -> PostgresQuery {
    let keys = (0..<semaphore.permits).map { semaphore.permitKey($0).int64Value ?? 0 }
    return """
        SELECT count(*)::int FROM pg_locks
        WHERE locktype = 'advisory' AND objsubid = 1 AND granted = \(granted)
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND ((classid::int8 << 32) | objid::int8) = ANY(\(keys))
        """
}

/// Sessions of this database holding or waiting for any advisory lock.
private func advisoryLocksLeft(_ db: TestContext) async throws -> Int {
    try await db.scalar("""
        SELECT count(*)::int FROM pg_locks
        WHERE locktype = 'advisory' AND pid <> pg_backend_pid()
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """, as: Int.self)
}

@Suite("Semaphores")
struct SemaphoreTests {
    @Test(arguments: [LockScope.transaction, .session])
    func neverMoreHoldersThanPermitsUnderAStormOfCancellations(scope: LockScope) async throws {
        try await TestDatabase.withDatabase(maximumConnections: 40) { db in
            let semaphore = try AdvisorySemaphore("storm", permits: 3)
            let (finished, cancelled, ownPermits) = (LockedBox(0), LockedBox(0), LockedBox(Set<Int>()))
            let mostWaiting = LockedBox(0)
            // Takers still making attempts: a holder keeps its permit until a taker waits
            // behind it on the server (so holds overlap waits), or until too few takers are
            // left for anyone to wait.
            let activeTakers = LockedBox(24)
            @Sendable func holdUntilSomeoneWaits() async throws {
                try await waitUntil("a taker waits for a permit, or too few are left to") {
                    try await db.scalar(permitLocks(semaphore, granted: false), as: Int.self) > 0 || activeTakers.value <= 3
                }
            }
            let mostHolding = try await sampleMaximum(db, permitLocks(semaphore, granted: true)) {
                try await withThrowingTaskGroup(of: Void.self) { takers in
                    for taker in 0..<24 {
                        takers.addTask {
                            var random = SplitMix64(state: UInt64(taker))
                            for _ in 0..<12 {
                                // Each attempt runs in a task of its own that a random share of
                                // attempts cancel after a random moment: while waiting, while
                                // holding, or never.
                                let attempt = Task {
                                    switch scope {
                                    case .transaction:
                                        try await db.client.withSemaphore("storm", permits: 3, logger: db.logger) { tx in
                                            // Inside, this session holds exactly one permit.
                                            let own = try await tx.query("""
                                                SELECT count(*)::int FROM pg_locks
                                                WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
                                                """).rows[0].decode(Int.self)
                                            ownPermits.withLock { _ = $0.insert(own) }
                                            try await holdUntilSomeoneWaits()
                                        }
                                    case .session:
                                        try await db.client.withSessionSemaphore("storm", permits: 3, heartbeat: nil, logger: db.logger) {
                                            try await holdUntilSomeoneWaits()
                                        }
                                    }
                                }
                                if random.next() % 3 == 0 {
                                    // A random moment without a timer: a random number of yields.
                                    for _ in 0..<(random.next() % 200) { await Task.yield() }
                                    attempt.cancel()
                                }
                                switch await attempt.result {
                                case .success: finished.withLock { $0 += 1 }
                                case .failure(let error) where error is CancellationError: cancelled.withLock { $0 += 1 }
                                case .failure(let error): throw error
                                }
                                let waiting = try await db.scalar(permitLocks(semaphore, granted: false), as: Int.self)
                                mostWaiting.withLock { $0 = max($0, waiting) }
                            }
                            activeTakers.withLock { $0 -= 1 }
                        }
                    }
                    try await takers.waitForAll()
                }
            }
            #expect(mostHolding <= 3, "at most 3 holders at every sample; saw \(mostHolding)")
            #expect(mostHolding == 3, "the storm filled the semaphore")
            #expect(mostWaiting.value > 0, "takers waited on the server")
            #expect(finished.value > 0 && cancelled.value > 0, "finished \(finished.value), cancelled \(cancelled.value)")
            if scope == .transaction { #expect(ownPermits.value == [1]) }
            try await waitUntil("no permit is held or waited for after the storm") { try await advisoryLocksLeft(db) == 0 }
        }
    }

    @Test func aTakerWaitsOnTheServerForOnePermitAndGetsItWhenItsHolderLetsGo() async throws {
        try await TestDatabase.withDatabase { db in
            let semaphore = try AdvisorySemaphore("two", permits: 2)
            try await db.withConnections(2) { holders in
                for (index, holder) in holders.enumerated() {
                    _ = try await holder.query("SELECT pg_advisory_lock(\(semaphore.permitKey(index).int64Value ?? 0))", logger: db.logger).collect()
                }
                let ran = LockedBox(false)
                let taker = Task {
                    try await db.client.withSemaphore("two", permits: 2, logger: db.logger) { _ in ran.withLock { $0 = true } }
                }
                try await waitUntil("the taker waits on the server") {
                    try await db.scalar(permitLocks(semaphore, granted: false), as: Int.self) == 1
                }
                #expect(!ran.value)
                // It waits for one permit: the one its holder must let go.
                let awaited = try await db.scalar("""
                    SELECT ((classid::int8 << 32) | objid::int8) FROM pg_locks
                    WHERE locktype = 'advisory' AND NOT granted
                      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                    """, as: Int64.self)
                let index = try #require((0..<2).first { semaphore.permitKey($0).int64Value == awaited })
                _ = try await holders[index].query("SELECT pg_advisory_unlock(\(awaited))", logger: db.logger).collect()
                try await withinTimeLimit(.seconds(20), "the taker after its permit was let go") { try await taker.value }
                #expect(ran.value)
            }
        }
    }

    @Test func withEveryPermitHeldImmediatelyThrowsLockTimeoutAndTakesNothing() async throws {
        try await TestDatabase.withDatabase { db in
            let semaphore = try AdvisorySemaphore("full", permits: 2)
            try await db.client.withSessionSemaphore("full", permits: 2, logger: db.logger) {
                try await db.client.withSemaphore("full", permits: 2, logger: db.logger) { _ in
                    for scope in [LockScope.transaction, .session] {
                        let error = await #expect(throws: PostgresLocksError.self) {
                            switch scope {
                            case .transaction: try await db.client.withSemaphore("full", permits: 2, wait: .immediately, logger: db.logger) { _ in }
                            case .session: try await db.client.withSessionSemaphore("full", permits: 2, wait: .immediately, logger: db.logger) {}
                            }
                        }
                        #expect(error?.code == .lockTimeout, "\(String(describing: error))")
                    }
                    let timedOut = await #expect(throws: PostgresLocksError.self) {
                        try await db.client.withSemaphore("full", permits: 2, wait: .timeout(.milliseconds(100)), logger: db.logger) { _ in }
                    }
                    #expect(timedOut?.code == .lockTimeout, "\(String(describing: timedOut))")
                    let holding = try await db.scalar(permitLocks(semaphore, granted: true), as: Int.self)
                    let waiting = try await db.scalar(permitLocks(semaphore, granted: false), as: Int.self)
                    #expect(holding == 2 && waiting == 0, "holding \(holding), waiting \(waiting)")
                }
            }
            #expect(try await advisoryLocksLeft(db) == 0)
        }
    }

    @Test func aSessionPermitWhoseBackendIsTerminatedCancelsTheBodyWithLockLost() async throws {
        try await TestDatabase.withDatabase { db in
            let semaphore = try AdvisorySemaphore("lost", permits: 1)
            let key = semaphore.permitKey(0).int64Value ?? 0
            let error = await #expect(throws: PostgresLocksError.self) {
                try await withinTimeLimit(.seconds(20), "the guarded call after its session died") {
                    try await db.client.withSessionSemaphore("lost", permits: 1, heartbeat: .seconds(1), logger: db.logger) {
                        let pid = try await db.scalar("""
                            SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
                              AND ((classid::int8 << 32) | objid::int8) = \(key)
                              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                            """, as: Int32.self)
                        try await db.query("SELECT pg_terminate_backend(\(pid))")
                        try await suspendUntilCancelled()
                    }
                }
            }
            #expect(error?.code == .lockLost, "\(String(describing: error))")
            try await waitUntil("the dead session's permit is gone") { try await advisoryLocksLeft(db) == 0 }
            // The permit is free again.
            try await db.client.withSessionSemaphore("lost", permits: 1, wait: .immediately, logger: db.logger) {}
        }
    }

    @Test func badSemaphoreArgumentsAreRefusedBeforeAnythingIsSent() async throws {
        try await TestDatabase.withDatabase { db in
            let bad: [(String, Int, LockWait)] = [
                ("", 2, .forever), ("a\u{0}b", 2, .forever), ("ok", 0, .forever),
                ("ok", AdvisorySemaphore.maximumPermits + 1, .forever), ("ok", 2, .timeout(.zero)),
            ]
            let ran = LockedBox(false)
            for (name, permits, wait) in bad {
                let inTransaction = await #expect(throws: PostgresLocksError.self) {
                    try await db.client.withSemaphore(name, permits: permits, wait: wait, logger: db.logger) { _ in ran.withLock { $0 = true } }
                }
                let inSession = await #expect(throws: PostgresLocksError.self) {
                    try await db.client.withSessionSemaphore(name, permits: permits, wait: wait, logger: db.logger) { ran.withLock { $0 = true } }
                }
                #expect(inTransaction?.code == .invalidArgument && inSession?.code == .invalidArgument, "\(name) \(permits) \(wait)")
            }
            let badHeartbeat = await #expect(throws: PostgresLocksError.self) {
                try await db.client.withSessionSemaphore("ok", permits: 2, heartbeat: .zero, logger: db.logger) { ran.withLock { $0 = true } }
            }
            #expect(badHeartbeat?.code == .invalidArgument)
            #expect(!ran.value)
            let left = try await advisoryLocksLeft(db)
            #expect(left == 0)
        }
    }
}
