import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Testing

/// The library's hot statements run as prepared statements, once per connection, unless a
/// client or connection turns it off.
@Suite("Prepared hot statements")
struct StatementPreparationTests {
    /// True when `take` got its lock, false when it threw `lockTimeout` (the lock is held elsewhere).
    static func acquired(_ take: () async throws -> Void) async -> Bool {
        do {
            try await take()
            return true
        } catch {
            #expect((error as? PostgresLocksError)?.code == .lockTimeout, "\(error)")
            return false
        }
    }

    private static func preparedStatements(on connection: PostgresConnection, logger: Logger) async throws -> [String] {
        try await connection.query("SELECT statement FROM pg_prepared_statements ORDER BY statement", logger: logger)
            .collect().map { try $0.decode(String.self) }
    }

    @Test func hotStatementsArePreparedOncePerConnection() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.withConnections(1) { connections in
                let connection = connections[0]
                for key in 1...5 {
                    try await connection.withAdvisoryLock(.int64(Int64(key)), logger: db.logger) { _ in }
                }
                let statements = try await Self.preparedStatements(on: connection, logger: db.logger)
                #expect(statements == ["BEGIN", "COMMIT", "SELECT pg_try_advisory_xact_lock($1::int8)::text"])
            }
        }
    }

    @Test func preparedCounterAndLockStatementsReturnTheRightValues() async throws {
        // PostgresNIO 1.33's prepared-query API mislabels result formats; the hot statements
        // return text so that booleans and numbers decode correctly.
        try await TestDatabase.withDatabase { db in
            let counter = try GaplessCounter(table: "numbers")
            try await counter.migrate(on: db.client, logger: db.logger)
            try await db.withConnections(2) { connections in
                var numbers: [Int64] = []
                for _ in 1...3 {
                    numbers.append(try await connections[0].withCheckedTransaction(logger: db.logger) { tx in
                        try await counter.next(scope: "a", in: tx)
                    })
                }
                #expect(numbers == [1, 2, 3])
                let outcomes = try await connections[0].withCheckedTransaction(logger: db.logger) { tx in
                    let first = await Self.acquired { try await tx.advisoryLock(.int64(77), wait: .immediately) }
                    let (taken, pair) = try await connections[1].withCheckedTransaction(logger: db.logger) { other in
                        (await Self.acquired { try await other.advisoryLock(.int64(77), wait: .immediately) },
                         await Self.acquired { try await other.advisoryLock(.pair(namespace: 1, id: 2), wait: .immediately) })
                    }
                    return [first, taken, pair]
                }
                #expect(outcomes == [true, false, true])
            }
        }
    }

    @Test func discardedStatementsArePreparedAgain() async throws {
        // DISCARD ALL (or DEALLOCATE ALL) sent by someone else drops the server's prepared
        // statements; the next transaction must not fail for it.
        try await TestDatabase.withDatabase { db in
            try await db.withConnections(1) { connections in
                let connection = connections[0]
                try await connection.withAdvisoryLock(.int64(1), logger: db.logger) { _ in }
                _ = try await connection.query("DISCARD ALL", logger: db.logger).collect()
                #expect(try await Self.preparedStatements(on: connection, logger: db.logger).isEmpty)
                try await connection.withAdvisoryLock(.int64(2), logger: db.logger) { _ in }
                #expect(try await Self.preparedStatements(on: connection, logger: db.logger).count == 3)
                let leftover = try await db.scalar("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", as: Int.self)
                #expect(leftover == 0)
            }
        }
    }

    /// The name PostgresNIO gave the statement prepared for `sql` on `connection`.
    private static func preparedName(of sql: String, on connection: PostgresConnection, logger: Logger) async throws -> String {
        try await connection.query("SELECT name FROM pg_prepared_statements WHERE statement = \(sql)", logger: logger)
            .collect()[0].decode(String.self)
    }

    @Test func aLockStatementLostAfterBeginIsPreparedAgainAndTheTransactionRunsAgain() async throws {
        // The try-lock is chained right after BEGIN; when the server no longer has it (26000)
        // the transaction is rolled back and both are sent again, once: the call succeeds.
        try await TestDatabase.withDatabase { db in
            try await db.withConnections(1) { connections in
                let connection = connections[0]
                try await connection.withAdvisoryLock(.int64(1), logger: db.logger) { _ in }
                let name = try await Self.preparedName(of: "SELECT pg_try_advisory_xact_lock($1::int8)::text", on: connection, logger: db.logger)
                _ = try await connection.query("DEALLOCATE \(unescaped: "\"" + name + "\"")", logger: db.logger).collect()
                let ran = try await connection.withAdvisoryLock(.int64(2), logger: db.logger) { tx in
                    try await tx.query("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objid = 2").rows[0].decode(Int.self)
                }
                #expect(ran == 1)
                // Prepared again (the others too: which statements a 26000 lost is not known).
                #expect(try await Self.preparedStatements(on: connection, logger: db.logger).contains("SELECT pg_try_advisory_xact_lock($1::int8)::text"))
                let leftover = try await db.scalar("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", as: Int.self)
                #expect(leftover == 0)
            }
        }
    }

    @Test func aCommitDeallocatedByTheBodyCommitsNothingAndLeavesTheConnectionUsable() async throws {
        // The body drops every prepared statement, COMMIT's too: the server refuses COMMIT
        // (26000) and the transaction, still open, is aborted. The call throws, nothing is
        // committed, and the connection is idle again for the next call.
        try await TestDatabase.withDatabase { db in
            try await db.query("CREATE TABLE t (n int)")
            try await db.withConnections(1) { connections in
                let connection = connections[0]
                try await connection.withCheckedTransaction(logger: db.logger) { _ in }  // COMMIT prepared
                let error = await #expect(throws: PostgresLocksError.self) {
                    try await connection.withCheckedTransaction(logger: db.logger) { tx in
                        try await tx.query("INSERT INTO t VALUES (1)")
                        try await tx.query("DEALLOCATE ALL")
                    }
                }
                #expect(error?.code == .transactionAborted)
                #expect(error?.sqlState == "26000")
                #expect(try await db.scalar("SELECT count(*)::int FROM t", as: Int.self) == 0)
                try await connection.withCheckedTransaction(logger: db.logger) { tx in try await tx.query("INSERT INTO t VALUES (2)") }
                #expect(try await db.scalar("SELECT count(*)::int FROM t", as: Int.self) == 1)
                #expect(!connection.isClosed)
            }
        }
    }

    @Test func aLockWithTimeoutOptionsSendsItsTryAfterTheSettingsAndHolds() async throws {
        // With a lock or statement timeout the settings go right after BEGIN and the try-lock
        // after them (no chaining): the lock is held in the transaction, the settings applied.
        try await TestDatabase.withDatabase { db in
            try await db.withConnections(1) { connections in
                let (held, timeout) = try await connections[0].withAdvisoryLock(.int64(42), options: .init(lockTimeout: .milliseconds(1500)), logger: db.logger) { tx in
                    try await tx.query("SELECT (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objid = 42 AND granted), current_setting('lock_timeout')").rows[0].decode((Int, String).self)
                }
                #expect(held == 1)
                #expect(timeout == "1500ms")
                let leftover = try await db.scalar("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", as: Int.self)
                #expect(leftover == 0)
            }
        }
    }

    @Test func statementsRunUnnamedOnAConnectionWithPreparationDisabled() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.withConnections(2) { connections in
                connections[0].statementPreparation = .disabled
                for connection in connections {
                    try await connection.withAdvisoryLock(.int64(3), logger: db.logger) { _ in }
                }
                #expect(try await Self.preparedStatements(on: connections[0], logger: db.logger).isEmpty)
                #expect(try await Self.preparedStatements(on: connections[1], logger: db.logger).count == 3)
            }
        }
    }

    @Test func preparationIsASettingOfEachClient() async throws {
        try await TestDatabase.withDatabase { db in
            let other = PostgresClient(configuration: try db.settings.makeClientConfiguration(), backgroundLogger: TestDatabase.backgroundLogger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await other.run() }
                defer { group.cancelAll() }
                other.statementPreparation = .disabled
                #expect(other.statementPreparation == .disabled)
                #expect(db.client.statementPreparation == .automatic)
                let pid: (PostgresClient) async throws -> (Int32, Int) = { client in
                    try await client.withAdvisoryLock(.int64(4), logger: db.logger) { tx in
                        try await tx.query("SELECT pg_backend_pid(), (SELECT count(*)::int FROM pg_prepared_statements)").rows[0].decode((Int32, Int).self)
                    }
                }
                // Statements are prepared once the client's pooling probe has answered.
                _ = await db.client.connectionPooling(logger: db.logger)
                #expect(await other.connectionPooling(logger: db.logger) == .sessionPerConnection)  // probed: a direct server
                let (_, preparedOnOther) = try await pid(other)
                let (_, preparedOnDefault) = try await pid(db.client)
                #expect(preparedOnOther == 0)
                #expect(preparedOnDefault == 2)
            }
        }
    }
}
