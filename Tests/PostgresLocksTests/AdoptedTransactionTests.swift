import Logging
@testable import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Testing

/// The library works inside a transaction the caller opened (an ORM's, or a `BEGIN` sent by
/// hand): it sends no `BEGIN` or `COMMIT`, its work commits with the caller's transaction and is
/// undone by its rollback, and it refuses a connection that is not in a transaction block.
@Suite("Adopted transactions")
struct AdoptedTransactionTests {
    private static func heldAdvisoryLocks(_ db: TestContext) async throws -> Int {
        try await db.scalar("""
            SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND granted
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """, as: Int.self)
    }

    @Test func anAdoptedTransactionsLockIsHeldUntilTheCallersCommitAndNothingElseIsSent() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.query("CREATE TABLE t (v int)")
            try await db.withConnections(1) { connections in
                let connection = connections[0]
                try await db.send("BEGIN", on: connection)
                try await db.send("INSERT INTO t VALUES (1)", on: connection)
                try await connection.withAdoptedTransaction(logger: db.logger) { tx in
                    try await tx.advisoryLock(.int64(42))
                    try await tx.query("INSERT INTO t VALUES (2)")
                }
                // Still the caller's open transaction: the lock is held, nothing committed.
                #expect(try await Self.heldAdvisoryLocks(db) == 1)
                #expect(try await db.scalar("SELECT count(*)::int FROM t", as: Int.self) == 0)
                try await db.send("COMMIT", on: connection)
                #expect(try await Self.heldAdvisoryLocks(db) == 0)
                #expect(try await db.scalar("SELECT count(*)::int FROM t", as: Int.self) == 2)
            }
        }
    }

    @Test func theCallersRollbackUndoesAGaplessNumberAllocatedInIt() async throws {
        try await TestDatabase.withDatabase { db in
            let counter = try GaplessCounter(table: "numbers")
            try await counter.migrate(on: db.client, logger: db.logger)
            try await db.withConnections(1) { connections in
                let connection = connections[0]
                try await db.send("BEGIN", on: connection)
                let first = try await connection.withAdoptedTransaction(logger: db.logger) { tx in
                    try await counter.next(scope: "tenant-a", in: tx)
                }
                #expect(first == 1)
                try await db.send("ROLLBACK", on: connection)
                try await db.send("BEGIN", on: connection)
                let again = try await connection.withAdoptedTransaction(logger: db.logger) { tx in
                    try await counter.next(scope: "tenant-a", in: tx)
                }
                try await db.send("COMMIT", on: connection)
                #expect(again == 1)  // the rolled-back number is given again: no gap
            }
        }
    }

    @Test func aConnectionOutsideATransactionBlockIsRefusedBeforeTheBodyRuns() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.withConnections(1) { connections in
                let connection = connections[0]
                // Seen before (status known) and not seen before: both refused.
                for round in 1...2 {
                    var bodyRan = false
                    await #expect {
                        try await connection.withAdoptedTransaction(logger: db.logger) { tx in
                            bodyRan = true
                            try await tx.advisoryLock(.int64(7))
                        }
                    } throws: { ($0 as? PostgresLocksError)?.code == .notInTransaction }
                    #expect(!bodyRan, "round \(round)")
                    #expect(try await Self.heldAdvisoryLocks(db) == 0)
                }
                // A transaction block opened and ended by hand is no longer adoptable.
                try await db.send("BEGIN", on: connection)
                try await db.send("COMMIT", on: connection)
                await #expect {
                    try await connection.withAdoptedTransaction(logger: db.logger) { _ in }
                } throws: { ($0 as? PostgresLocksError)?.code == .notInTransaction }
            }
        }
    }

    @Test func aStaleInTransactionStatusAfterTheCallersCommitIsNotBelieved() async throws {
        // The ReadyForQuery after someone else's COMMIT can arrive in a later read than the
        // COMMIT's result: until it is read, the last status says "in a transaction". Adopting
        // then would run transaction-scoped locks outside any transaction.
        try await TestDatabase.withDatabase { db in
            try await db.withConnections(1) { connections in
                let connection = connections[0]
                try await db.send("BEGIN", on: connection)
                try await db.send("COMMIT", on: connection)
                ConnectionWatch.watch(connection).transactionStatus.overwriteStatusInFlight(.inTransaction)
                await #expect {
                    try await connection.withAdoptedTransaction(logger: db.logger) { tx in
                        try await tx.advisoryLock(.int64(5))
                    }
                } throws: { ($0 as? PostgresLocksError)?.code == .notInTransaction }
            }
        }
    }

    @Test func aBackendTerminatedInsideTheAdoptedTransactionEndsItsNextStatementWithConnectionLost() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.withConnections(1) { connections in
                let connection = connections[0]
                try await db.send("BEGIN", on: connection)
                let started = ContinuousClock.now
                await #expect {
                    try await connection.withAdoptedTransaction(logger: db.logger) { tx in
                        let pid = try await tx.query("SELECT pg_backend_pid()").rows[0].decode(Int32.self)
                        try await db.query("SELECT pg_terminate_backend(\(pid))")
                        try await tx.advisoryLock(.int64(3))
                    }
                } throws: { ($0 as? PostgresLocksError)?.code == .connectionLost }
                #expect(ContinuousClock.now - started < .seconds(10))
                #expect(try await Self.heldAdvisoryLocks(db) == 0)
            }
        }
    }

    @Test(.needsPgBouncer)
    func anAdoptedTransactionThroughATransactionPoolerHoldsItsLockUntilTheCallersCommit() async throws {
        try await TestPgBouncer.withPooler(mode: .transaction) { pooled in
            let direct = try await TestDatabase.makeConnection(settings: pooled.directSettings)
            func held() async throws -> Int {
                try await direct.query("""
                    SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = 11
                      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                    """, logger: pooled.logger).collect()[0].decode(Int.self)
            }
            try await pooled.client.withConnection { connection in
                _ = try await connection.query("BEGIN", logger: pooled.logger).collect()
                try await connection.withAdoptedTransaction(canceller: pooled.client, logger: pooled.logger) { tx in
                    try await tx.advisoryLock(.int64(11))
                }
                #expect(try await held() == 1)
                _ = try await connection.query("COMMIT", logger: pooled.logger).collect()
            }
            #expect(try await held() == 0)
            try await direct.close()
        }
    }

    @Test func anErrorTheBodySwallowedIsRethrownSoTheCallerRollsBack() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.withConnections(1) { connections in
                let connection = connections[0]
                try await db.send("BEGIN", on: connection)
                await #expect {
                    try await connection.withAdoptedTransaction(logger: db.logger) { tx in
                        _ = try? await tx.query("SELECT 1 / 0")
                    }
                } throws: { ($0 as? PostgresLocksError)?.code == .transactionAborted }
                // The block is failed: adopting it again says so, with nothing sent.
                await #expect {
                    try await connection.withAdoptedTransaction(logger: db.logger) { _ in }
                } throws: { ($0 as? PostgresLocksError)?.code == .inFailedTransaction }
                try await db.send("ROLLBACK", on: connection)
            }
        }
    }

    @Test func aCancelledLockWaitInAnAdoptedTransactionLeavesTheCallersConnectionUsable() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.withConnections(2) { connections in
                let (holder, waiter) = (connections[0], connections[1])
                try await db.send("BEGIN", on: holder)
                try await db.send("SELECT pg_advisory_xact_lock(99)", on: holder)
                try await db.send("BEGIN", on: waiter)
                let wait = Task {
                    try await waiter.withAdoptedTransaction(canceller: db.client, logger: db.logger) { tx in
                        try await tx.advisoryLock(.int64(99))
                    }
                }
                try await waitUntil("the adopted transaction waits for the lock") {
                    try await db.scalar("""
                        SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
                          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                        """, as: Int.self) == 1
                }
                wait.cancel()
                await #expect(throws: CancellationError.self) { try await wait.value }
                // The wait was cancelled on the server, not by closing the caller's connection.
                #expect(!waiter.isClosed)
                try await db.send("ROLLBACK", on: waiter)
                try await db.send("SELECT 1", on: waiter)
                try await db.send("ROLLBACK", on: holder)
            }
        }
    }
}
