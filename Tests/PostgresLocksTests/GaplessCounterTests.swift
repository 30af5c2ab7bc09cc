import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Testing

private struct DeliberateRollback: Error {}

@Suite("Gapless counters")
struct GaplessCounterTests {
    @Test(arguments: GaplessCounter.Strategy.allCases)
    func sixteenWritersOverTwentyScopesWithRollbacksGiveOneToNPerScope(strategy: GaplessCounter.Strategy) async throws {
        try await TestDatabase.withDatabase(maximumConnections: 20) { db in
            let counter = try GaplessCounter(table: "counter_\(strategy.rawValue.replacingOccurrences(of: "-", with: "_"))", strategy: strategy)
            try await counter.migrate(on: db.client, logger: db.logger)
            // What each committed transaction recorded; no unique constraint, so a duplicate would show.
            try await db.query("CREATE TABLE issued (scope text NOT NULL, n bigint NOT NULL)")
            let rolledBack = LockedBox(0)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<16 {
                    group.addTask {
                        var random = SystemRandomNumberGenerator()
                        for step in 0..<30 {
                            let scope = "scope-\(Int.random(in: 0..<20, using: &random))"
                            let rollBack = (writer * 30 + step) % 10 == 0  // 10% of transactions
                            do {
                                try await counter.withNextNumber(scope: scope, on: db.client, logger: db.logger) { number, tx in
                                    try await tx.query("INSERT INTO issued VALUES (\(scope), \(number))")
                                    if rollBack { throw DeliberateRollback() }
                                }
                            } catch is DeliberateRollback {
                                rolledBack.withLock { $0 += 1 }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(rolledBack.value == 48)
            let rows = try await db.query("""
                SELECT scope, count(*)::int, count(DISTINCT n)::int, min(n), max(n) FROM issued GROUP BY scope
                """)
            var total = 0
            for row in rows {
                let (scope, count, distinct, low, high) = try row.decode((String, Int, Int, Int64, Int64).self)
                #expect(count == distinct, "duplicates in \(scope)")
                #expect(low == 1 && high == Int64(count), "gap in \(scope): \(count) numbers from \(low) to \(high)")
                total += count
            }
            #expect(total == 16 * 30 - 48)
            if strategy == .counterRow {
                let mismatched = try await db.scalar("""
                    SELECT count(*)::int FROM counter_counter_row c
                    WHERE c.value <> (SELECT count(*) FROM issued i WHERE i.scope = c.scope)
                    """, as: Int.self)
                #expect(mismatched == 0)
            }
        }
    }

    @Test func aLockTakenInsideTheSameStatementAsMaxDoesNotProtectIt() async throws {
        // Under READ COMMITTED a statement's snapshot is taken when it starts. A lock taken
        // inside that statement is granted later, so MAX is read from before the previous
        // holder committed: a duplicate number. Taking the lock in an earlier statement fixes it.
        try await TestDatabase.withDatabase(maximumConnections: 6) { db in
            try await db.query("CREATE TABLE stamps (scope text NOT NULL, n bigint NOT NULL)")
            let key = LockKey.hashed("stamps:x")
            let holder = try await db.makeConnection()
            let waiter = try await db.makeConnection()
            defer {
                Task { try? await holder.close(); try? await waiter.close() }
            }
            func race(lockInSameStatement: Bool) async throws -> Int64 {
                let holding = try await holder.withCheckedTransaction(logger: db.logger) { tx -> Task<Int64, any Error> in
                    try await tx.advisoryLock(key)
                    try await tx.query("INSERT INTO stamps SELECT 'x', COALESCE(MAX(n), 0) + 1 FROM stamps WHERE scope = 'x'")
                    // The second writer starts while the first still holds the lock.
                    let second = Task {
                        try await waiter.withCheckedTransaction(logger: db.logger) { tx2 in
                            if lockInSameStatement {
                                return try await tx2.query("""
                                    WITH l AS MATERIALIZED (SELECT pg_advisory_xact_lock(\(key.int64Value!)))
                                    INSERT INTO stamps SELECT 'x', (SELECT COALESCE(MAX(n), 0) + 1 FROM stamps WHERE scope = 'x') FROM l
                                    RETURNING n
                                    """).rows[0].decode(Int64.self)
                            } else {
                                try await tx2.advisoryLock(key)
                                return try await tx2.query("""
                                    INSERT INTO stamps SELECT 'x', COALESCE(MAX(n), 0) + 1 FROM stamps WHERE scope = 'x' RETURNING n
                                    """).rows[0].decode(Int64.self)
                            }
                        }
                    }
                    try await waitUntil("the second writer waits for the lock") {
                        try await db.scalar("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", as: Int.self) == 1
                    }
                    return second
                }
                return try await holding.value
            }
            // Same statement: the waiter's snapshot predates the holder's commit → number 1 again.
            #expect(try await race(lockInSameStatement: true) == 1)
            try await db.query("TRUNCATE stamps")
            // Earlier statement: the MAX runs after the lock, with a fresh snapshot → number 2.
            #expect(try await race(lockInSameStatement: false) == 2)
        }
    }

    @Test func badNamesAndScopesAreRejectedBeforeAnyWrite() async throws {
        #expect(throws: PostgresLocksError.self) { try GaplessCounter(table: "invoices; DROP TABLE users") }
        #expect(throws: PostgresLocksError.self) { try GaplessCounter(table: "t", scopeColumn: "a\"b") }
        #expect(throws: PostgresLocksError.self) { try GaplessCounter(table: "t", schema: String(repeating: "s", count: 64)) }
        #expect(throws: PostgresLocksError.self) { try GaplessCounter(table: "t", maximumAttempts: 0) }
        try await TestDatabase.withDatabase(maximumConnections: 2) { db in
            let counter = try GaplessCounter(table: "numbers")
            try await counter.migrate(on: db.client, logger: db.logger)
            await #expect(throws: PostgresLocksError.self) {
                try await counter.withNextNumber(scope: "", on: db.client, logger: db.logger) { _, _ in }
            }
            #expect(try await db.scalar("SELECT count(*)::int FROM numbers", as: Int.self) == 0)
        }
    }

    @Test func concurrentCreateTableCallsAllSucceed() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 10) { db in
            let counter = try GaplessCounter(table: "created_once", schema: "public", strategy: .advisoryLock)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 { group.addTask { try await counter.migrate(on: db.client, logger: db.logger) } }
                try await group.waitForAll()
            }
            let n = try await counter.withNextNumber(scope: "a", on: db.client, logger: db.logger) { number, _ in number }
            #expect(n == 1)
        }
    }
}

@Suite("Statement texts for tools")
struct GaplessCounterStatementTextTests {
    @Test func theServerComputesTheSameKeysAsTheLibrary() async throws {
        try await TestDatabase.withDatabase { db in
            for scheme in LockKey.HashScheme.all {
                for name in ["", "invoices:acme/2026", "ключ:☃", "it's", String(repeating: "x", count: 500)] {
                    let literal = "'" + name.replacingOccurrences(of: "'", with: "''") + "'"
                    let onServer = try await db.scalar(PostgresQuery(unsafeSQL: "SELECT \(scheme.serverExpression(forTextSQL: literal))"), as: Int64.self)
                    #expect(onServer == scheme.int64Key(for: name), "\(scheme) of \(name.prefix(20))")
                }
            }
        }
    }

    @Test func statementTextsRunAsTheLibrarysNextDoes() async throws {
        try await TestDatabase.withDatabase { db in
            for strategy in GaplessCounter.Strategy.allCases {
                let counter = try GaplessCounter(table: "texts_\(strategy.rawValue.replacingOccurrences(of: "-", with: "_"))", strategy: strategy)
                try await counter.migrate(on: db.client, logger: db.logger)
                // Numbers 1 and 2 from the library, 3 from its texts, 4 from the library again.
                for _ in 0..<2 { _ = try await counter.withNextNumber(scope: "s", on: db.client, logger: db.logger) { number, _ in number } }
                let statements = counter.statementTexts(scopeSQL: "'s'")
                let third = try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                    var last: String?
                    for statement in statements {
                        last = try await tx.query(PostgresQuery(unsafeSQL: statement)).rows.first.map { try $0.decode(String.self) }
                    }
                    return last
                }
                #expect(third == "3", "\(strategy)")
                let fourth = try await counter.withNextNumber(scope: "s", on: db.client, logger: db.logger) { number, _ in number }
                #expect(fourth == 4, "\(strategy)")
                if strategy == .advisoryLock {
                    let key = counter.lockKey(scope: "s")
                    #expect(statements[0].contains("chr(58)"))
                    let onServer = try await db.scalar(PostgresQuery(unsafeSQL: statements[0].replacingOccurrences(of: "SELECT pg_advisory_xact_lock(", with: "SELECT (").replacingOccurrences(of: "::text", with: "")), as: Int64.self)
                    #expect(LockKey.int64(onServer) == key)
                }
            }
        }
    }
}
