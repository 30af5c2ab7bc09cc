import Logging
@testable import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Testing

/// A checked transaction never nests by accident: on a connection already inside a
/// transaction (an ORM's, or a BEGIN sent by hand) it throws before sending anything, so it
/// cannot COMMIT the outer transaction early.
@Suite("Nested transactions")
struct NestedTransactionTests {
    /// What the server last ran on `pid`'s session, and its state.
    private static func activity(of pid: Int32, _ db: TestContext) async throws -> (state: String, query: String) {
        let rows = try await db.query("SELECT state, query FROM pg_stat_activity WHERE pid = \(pid)")
        return try rows[0].decode((String, String).self)
    }

    @Test func checkedTransactionInsideAnOpenTransactionThrowsBeforeSendingAnything() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.query("CREATE TABLE t (v int)")
            try await db.withConnections(1) { connections in
                let connection = connections[0]
                // The library has seen this connection answer: its status is known.
                let pid = try await connection.withCheckedTransaction(logger: db.logger) { tx in
                    try await tx.query("SELECT pg_backend_pid()").rows[0].decode(Int32.self)
                }
                try await db.send("BEGIN", on: connection)
                try await db.send("INSERT INTO t VALUES (1)", on: connection)
                var bodyRan = false
                await #expect {
                    try await connection.withCheckedTransaction(logger: db.logger) { _ in bodyRan = true }
                } throws: { ($0 as? PostgresLocksError)?.code == .nestedTransaction }
                #expect(!bodyRan)
                let seen = try await Self.activity(of: pid, db)
                #expect(seen.state == "idle in transaction")
                #expect(seen.query == "INSERT INTO t VALUES (1)")  // nothing was sent after it
                // The outer transaction is still the caller's: its rollback undoes its work.
                try await db.send("ROLLBACK", on: connection)
                #expect(try await db.scalar("SELECT count(*)::int FROM t", as: Int.self) == 0)
            }
        }
    }

    @Test func theStaleStatusOfTheLibrarysOwnCommitIsNotTakenForAnOuterTransaction() async throws {
        // PostgresNIO ends COMMIT at its CommandComplete; the ReadyForQuery after it can come in
        // a later read. Until it is read, the last status is the transaction's own "in a
        // transaction". A second transaction started at that moment must not be refused.
        try await TestDatabase.withDatabase { db in
            try await db.query("CREATE TABLE t (v int)")
            try await db.withConnections(1) { connections in
                let connection = connections[0]
                for round in 1...3 {
                    try await connection.withCheckedTransaction(logger: db.logger) { tx in
                        try await tx.query("INSERT INTO t VALUES (\(round))")
                    }
                    // The moment before the COMMIT's ReadyForQuery is read.
                    ConnectionWatch.watch(connection).transactionStatus.overwriteStatusInFlight(.inTransaction)
                }
                try await connection.withCheckedTransaction(logger: db.logger) { tx in
                    try await tx.query("INSERT INTO t VALUES (4)")
                }
                #expect(try await db.scalar("SELECT count(*)::int FROM t", as: Int.self) == 4)
                // An outer transaction begun after that is still refused, with nothing sent.
                try await db.send("BEGIN", on: connection)
                await #expect {
                    try await connection.withCheckedTransaction(logger: db.logger) { _ in }
                } throws: { ($0 as? PostgresLocksError)?.code == .nestedTransaction }
                try await db.send("ROLLBACK", on: connection)
            }
        }
    }

    @Test func aConnectionNotSeenBeforeIsAskedWithOneReadOnlyStatement() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.query("CREATE TABLE t (v int)")
            try await db.withConnections(1) { connections in
                let connection = connections[0]
                try await db.send("BEGIN", on: connection)
                try await db.send("INSERT INTO t VALUES (1)", on: connection)
                let pid = try await connection.query("SELECT pg_backend_pid()", logger: db.logger).collect()[0].decode(Int32.self)
                let counter = try GaplessCounter(table: "numbers")
                await #expect {
                    try await connection.withCheckedTransaction(logger: db.logger) { tx in try await counter.next(scope: "a", in: tx) }
                } throws: { ($0 as? PostgresLocksError)?.code == .nestedTransaction }
                let seen = try await Self.activity(of: pid, db)
                #expect(seen.state == "idle in transaction")
                #expect(seen.query == "SELECT 1")
                try await db.send("ROLLBACK", on: connection)
                #expect(try await db.scalar("SELECT count(*)::int FROM t", as: Int.self) == 0)
            }
        }
    }

    @Test func aFailedOuterTransactionIsRefusedToo() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.withConnections(1) { connections in
                let connection = connections[0]
                try await connection.withCheckedTransaction(logger: db.logger) { _ in }
                try await db.send("BEGIN", on: connection)
                await #expect(throws: (any Error).self) { try await db.send("SELECT 1/0", on: connection) }
                await #expect {
                    try await connection.withAdvisoryLock(.int64(5), logger: db.logger) { _ in }
                } throws: { ($0 as? PostgresLocksError)?.code == .nestedTransaction }
                try await db.send("ROLLBACK", on: connection)
                // Idle again: checked transactions work.
                try await connection.withAdvisoryLock(.int64(5), logger: db.logger) { _ in }
            }
        }
    }

    @Test func pooledConnectionsInsideAnOpenTransactionAreRefused() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.client.withConnection { connection in
                try await db.send("BEGIN", on: connection)
                await #expect {
                    try await connection.withRetryingTransaction(logger: db.logger) { _ in }
                } throws: { ($0 as? PostgresLocksError)?.code == .nestedTransaction }
                try await db.send("ROLLBACK", on: connection)
            }
        }
    }

    @Test func transactionStatusIsTrackedOnPostgresNIOConnections() async throws {
        // The tracker reaches PostgresNIO's internal channel through reflection; this fails if
        // a PostgresNIO release renames it.
        try await TestDatabase.withDatabase { db in
            try await db.withConnections(1) { connections in
                let connection = connections[0]
                #expect(TransactionStatusTracker.channel(of: connection) != nil)
                let tracker = ConnectionWatch.watch(connection).transactionStatus
                // PostgresNIO ends a statement at its CommandComplete or ErrorResponse; the
                // ReadyForQuery that carries the status can come in a later read: wait for it.
                try await connection.checkedQuery("SELECT 1", logger: db.logger)
                try await waitUntil("the status is idle") { tracker.status == .idle }
                try await db.send("BEGIN", on: connection)
                try await waitUntil("the status is in a transaction") { tracker.status == .inTransaction }
                await #expect(throws: (any Error).self) { try await db.send("SELECT 1/0", on: connection) }
                try await waitUntil("the status is a failed transaction") { tracker.status == .failed }
                try await db.send("ROLLBACK", on: connection)
                try await waitUntil("the status is idle again") { tracker.status == .idle }
            }
        }
    }
}
