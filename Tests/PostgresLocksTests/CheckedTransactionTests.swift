import NIOCore
import EphemeralPostgres
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Synchronization
import Testing

@Suite("Checked transactions")
struct CheckedTransactionTests {
    /// PostgresNIO's pool fails a lease whose task is cancelled with its own
    /// `ConnectionPoolError.requestCancelled`; the library throws `CancellationError`, as for
    /// any cancelled wait, never `connectionLost` (which a retry policy would re-run).
    @Test func aCallCancelledWhileWaitingForAPooledConnectionThrowsCancellationError() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 1) { db in
            let leased = LockedBox(false)
            let holder = Task {
                try await db.client.withCheckedTransaction(logger: db.logger) { _ in
                    leased.withLock { $0 = true }
                    try await suspendUntilCancelled()
                }
            }
            try await waitUntil("the pool's only connection is leased") { leased.value }
            for call in 0..<3 {
                let ended = LockedBox(false)
                let waiter = Task {
                    defer { ended.withLock { $0 = true } }
                    switch call {
                    case 0: try await db.client.withCheckedTransaction(logger: db.logger) { _ in }
                    case 1: try await db.client.withRetryingTransaction(retry: .resolvingCommitOutcome, logger: db.logger) { _ in }
                    default: try await db.client.withSemaphore("s", permits: 2, logger: db.logger) { _ in }
                    }
                }
                // Cancelled before it asks the pool, or while it waits in the pool's queue.
                if call > 0 {
                    try await holdsThroughout(.milliseconds(300), "the call waits for the leased connection") { !ended.value }
                }
                waiter.cancel()
                let outcome = await waiter.result
                #expect(throws: CancellationError.self, "call \(call)") { try outcome.get() }
            }
            holder.cancel()
            _ = await holder.result
        }
    }

    @Test func bodyThatSwallowsAnErrorMakesTheCallThrowAndCommitsNothing() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.query("CREATE TABLE t (n int)")
            let error = await #expect(throws: PostgresLocksError.self) {
                try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                    try await tx.query("INSERT INTO t VALUES (1)")
                    do {
                        try await tx.query("SELECT 1 / 0")
                    } catch {
                        // swallowed on purpose: the transaction is aborted all the same
                    }
                }
            }
            #expect(error?.code == .transactionAborted)
            #expect(error?.sqlState == "22012")
            #expect(try await db.scalar("SELECT count(*)::int FROM t", as: Int.self) == 0)
        }
    }

    @Test func commitAnsweringRollbackIsDetected() async throws {
        // A statement sent on the raw connection whose rows (and so whose error) are never read:
        // the driver drops the error, and COMMIT answers ROLLBACK. PostgresNIO's own
        // withTransaction returns normally here; ours must throw. COMMIT runs prepared (no
        // command tag from the driver) or unnamed: both are checked, on a pool and on a
        // connection, and a good transaction after a bad one still commits.
        try await TestDatabase.withDatabase { db in
            try await db.query("CREATE TABLE t (n int)")
            try await db.withConnections(2) { connections in
                connections[1].statementPreparation = .disabled
                let runners: [(String, any TransactionRunner)] = [("pool", db.client), ("prepared", connections[0]), ("unnamed", connections[1])]
                for (name, runner) in runners {
                    for round in 1...3 {
                        let error = await #expect(throws: PostgresLocksError.self, "\(name), round \(round)") {
                            try await runner.withCheckedTransaction(logger: db.logger) { tx in
                                try await tx.query("INSERT INTO t VALUES (1)")
                                _ = try? await tx.connection.query("SELECT 1 / 0", logger: db.logger)
                            }
                        }
                        #expect(error?.code == .transactionAborted, "\(name), round \(round)")
                        try await runner.withCheckedTransaction(logger: db.logger) { tx in try await tx.query("INSERT INTO t VALUES (2)") }
                    }
                }
                #expect(try await db.scalar("SELECT count(*)::int FROM t WHERE n = 1", as: Int.self) == 0)
                #expect(try await db.scalar("SELECT count(*)::int FROM t WHERE n = 2", as: Int.self) == 9)
                // The prepared runner did send COMMIT prepared (its tag read from the stream).
                let prepared = try await connections[0].query("SELECT statement FROM pg_prepared_statements", logger: db.logger).collect().map { try $0.decode(String.self) }
                #expect(prepared.contains("COMMIT"))
                let unnamed = try await connections[1].query("SELECT count(*)::int FROM pg_prepared_statements", logger: db.logger).collect()[0].decode(Int.self)
                #expect(unnamed == 0)
            }
        }
    }

    @Test func errorRaisedWhileProducingRowsIsThrown() async throws {
        // The 55P03 comes from the lock function inside a SELECT: only reading the rows shows it.
        try await TestDatabase.withDatabase { db in
            let holder = try await db.makeConnection()
            defer { Task { try? await holder.close() } }
            _ = try await holder.query("SELECT pg_advisory_lock(4242)", logger: db.logger).collect()
            let error = await #expect(throws: PostgresLocksError.self) {
                try await db.client.withCheckedTransaction(options: .init(lockTimeout: .milliseconds(50)), logger: db.logger) { tx in
                    try await tx.query("SELECT pg_advisory_xact_lock(4242)")
                }
            }
            #expect(error?.code == .lockNotAvailable)
        }
    }

    @Test func deadlockRaisedByALockFunctionInsideTheBodyIsThrown() async throws {
        try await TestDatabase.withDatabase { db in
            let outcomes = try await runDeadlockPair(db, retry: nil)
            let deadlocks = outcomes.filter { ($0.error as? PostgresLocksError)?.code == .deadlock }
            #expect(deadlocks.count == 1, "outcomes: \(outcomes.map { "\($0.error.map { "\($0)" } ?? "ok")" })")
            #expect(outcomes.filter { $0.error == nil }.count == 1)
            #expect(try await db.scalar("SELECT count(*)::int FROM deadlock_log", as: Int.self) == 1)
        }
    }

    @Test func terminatedBackendBetweenStatementsMakesTheCallThrowPromptly() async throws {
        try await TestDatabase.withDatabase { db in
            let clock = ContinuousClock()
            let elapsed = LockedBox<Duration?>(nil)
            let error = await #expect(throws: PostgresLocksError.self) {
                try await withinTimeLimit(.seconds(10), "the transaction on a terminated backend") {
                    try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                        let pid = try await tx.query("SELECT pg_backend_pid()").rows[0].decode(Int32.self)
                        try await db.query("SELECT pg_terminate_backend(\(pid))")
                        try await waitUntil("the backend is gone") {
                            try await db.scalar("SELECT count(*)::int FROM pg_stat_activity WHERE pid = \(pid)", as: Int.self) == 0
                        }
                        try await waitUntil("the client saw the socket close") { tx.connection.isClosed }
                        let started = clock.now
                        defer { elapsed.withLock { $0 = clock.now - started } }
                        try await tx.query("SELECT 1")
                    }
                }
            }
            #expect(error?.code == .connectionLost)
            #expect((elapsed.withLock { $0 } ?? .seconds(99)) < .seconds(2))
        }
    }

    @Test func aPooledConnectionWhoseServerProcessEndedIsNeverHandedToALibraryCall() async throws {
        // One connection in the pool: after its server process is terminated and the client saw
        // the socket close, the pool may still hand that same connection out before its event
        // loop has processed the close. A library call leases again instead of failing.
        try await TestDatabase.withDatabase(maximumConnections: 1) { db in
            let admin = try await db.makeConnection()
            defer { Task { try? await admin.close() } }
            for round in 1...20 {
                // The connection goes back to the pool idle; then its server process is ended.
                let (connection, pid) = try await db.client.withConnection { connection in
                    (connection, try await connection.query("SELECT pg_backend_pid()", logger: db.logger).collect()[0].decode(Int32.self))
                }
                _ = try await admin.query("SELECT pg_terminate_backend(\(pid))", logger: db.logger).collect()
                try await waitUntil("the client saw the socket close (round \(round))") { connection.isClosed }
                let answer = try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                    try await tx.query("SELECT 41 + 1").rows[0].decode(Int.self)
                }
                #expect(answer == 42, "round \(round)")
            }
        }
    }

    @Test func terminatedBackendDuringAStatementMakesTheCallThrowPromptly() async throws {
        try await TestDatabase.withDatabase { db in
            // The body's statement waits on a lock another session holds, so it is running on
            // the server when its backend is terminated.
            let holder = try await db.makeConnection()
            defer { Task { try? await holder.close() } }
            _ = try await holder.query("SELECT pg_advisory_lock(9001)", logger: db.logger).collect()
            let pidBox = LockedBox<Int32?>(nil)
            let error = await #expect(throws: PostgresLocksError.self) {
                try await withinTimeLimit(.seconds(10), "the transaction whose backend was terminated mid-statement") {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                                let pid = try await tx.query("SELECT pg_backend_pid()").rows[0].decode(Int32.self)
                                pidBox.withLock { $0 = pid }
                                try await tx.query("SELECT pg_advisory_xact_lock(9001)")
                            }
                        }
                        group.addTask {
                            try await waitUntil("the body's statement waits on the server") {
                                guard let pid = pidBox.withLock({ $0 }) else { return false }
                                return try await db.scalar("SELECT count(*)::int FROM pg_stat_activity WHERE pid = \(pid) AND wait_event_type = 'Lock'", as: Int.self) == 1
                            }
                            let pid = pidBox.withLock { $0 }!
                            try await db.query("SELECT pg_terminate_backend(\(pid))")
                        }
                        try await group.waitForAll()
                    }
                }
            }
            #expect(error?.code == .connectionLost)
        }
    }

    @Test func aClosedConnectionThrowsInsteadOfHanging() async throws {
        try await TestDatabase.withDatabase { db in
            let connection = try await db.makeConnection()
            try await connection.close()
            let error = await #expect(throws: PostgresLocksError.self) {
                try await withinTimeLimit(.seconds(5), "a transaction on a closed connection") {
                    try await connection.withCheckedTransaction(logger: db.logger) { tx in
                        try await tx.query("SELECT 1")
                    }
                }
            }
            #expect(error?.code == .connectionLost)
        }
    }

    @Test func socketErrorsOfPreparedStatementsBecomeConnectionLost() {
        // PostgresNIO's prepared-query API (used for the hot statements) passes socket errors
        // through untyped; they must read as connectionLost, which retry loops recognize.
        for error: any Error in [
            IOError(errnoCode: 104, reason: "read(descriptor:pointer:size:)"),
            ChannelError.ioOnClosedChannel,
            PostgresError.connectionClosed,
            PostgresError.protocol("Unexpected connection close"),
        ] {
            #expect((PostgresLocksError.wrap(error) as? PostgresLocksError)?.code == .connectionLost, "\(error)")
        }
        #expect((PostgresLocksError.wrap(PostgresError.protocol("something else")) as? PostgresLocksError)?.code == .client)
    }

    @Test func sqlStatesBecomeTypedErrors() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.query("CREATE TABLE u (k int PRIMARY KEY)")
            try await db.query("INSERT INTO u VALUES (1)")
            let unique = await #expect(throws: PostgresLocksError.self) {
                try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                    try await tx.query("INSERT INTO u VALUES (1)")
                }
            }
            #expect(unique?.code == .uniqueViolation)
            #expect(unique?.sqlState == "23505")

            // A statement that waits on a lock another session holds outlives statement_timeout.
            let holder = try await db.makeConnection()
            defer { Task { try? await holder.close() } }
            _ = try await holder.query("SELECT pg_advisory_lock(9002)", logger: db.logger).collect()
            let canceled = await #expect(throws: PostgresLocksError.self) {
                try await db.client.withCheckedTransaction(options: .init(statementTimeout: .milliseconds(20)), logger: db.logger) { tx in
                    try await tx.query("SELECT pg_advisory_xact_lock(9002)")
                }
            }
            #expect(canceled?.code == .queryCanceled)

            // NOWAIT on a row another transaction holds.
            _ = try await holder.query("BEGIN", logger: db.logger).collect()
            _ = try await holder.query("SELECT * FROM u WHERE k = 1 FOR UPDATE", logger: db.logger).collect()
            let locked = await #expect(throws: PostgresLocksError.self) {
                try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                    try await tx.query("SELECT * FROM u WHERE k = 1 FOR UPDATE NOWAIT")
                }
            }
            #expect(locked?.code == .lockNotAvailable)
        }
    }

    @Test func transactionTimeoutsDoNotLeakIntoThePooledConnection() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 1) { db in
            let inside = try await db.client.withCheckedTransaction(options: .init(lockTimeout: .milliseconds(1500)), logger: db.logger) { tx in
                try await tx.query("SHOW lock_timeout").rows[0].decode(String.self)
            }
            #expect(inside == "1500ms")
            // One connection in the pool: the next lease is the same connection.
            #expect(try await db.scalar("SHOW lock_timeout", as: String.self) == "0")
        }
    }

    @Test(arguments: [Duration.zero, .milliseconds(-5), .seconds(3_000_000)])
    func invalidTimeoutsAreRejectedBeforeAnythingIsSent(timeout: Duration) async throws {
        try await TestDatabase.withDatabase { db in
            let ran = LockedBox(false)
            let error = await #expect(throws: PostgresLocksError.self) {
                try await db.client.withCheckedTransaction(options: .init(lockTimeout: timeout), logger: db.logger) { _ in
                    ran.withLock { $0 = true }
                }
            }
            #expect(error?.code == .invalidArgument)
            #expect(!ran.withLock { $0 })
        }
    }

    @Test func isolationLevelAndReadOnlyAreApplied() async throws {
        try await TestDatabase.withDatabase { db in
            let (isolation, readOnly) = try await db.client.withCheckedTransaction(options: .init(isolation: .serializable, access: .readOnly), logger: db.logger) { tx in
                (try await tx.query("SHOW transaction_isolation").rows[0].decode(String.self),
                 try await tx.query("SHOW transaction_read_only").rows[0].decode(String.self))
            }
            #expect(isolation == "serializable")
            #expect(readOnly == "on")
        }
    }

    @Test func savepointRecoversFromAnErrorAndTheRestCommits() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.query("CREATE TABLE t (n int)")
            try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                try await tx.query("INSERT INTO t VALUES (1)")
                await #expect(throws: PostgresLocksError.self) {
                    try await tx.withSavepoint { try await tx.query("SELECT 1 / 0") }
                }
                try await tx.query("INSERT INTO t VALUES (2)")
            }
            #expect(try await db.scalar("SELECT sum(n)::int FROM t", as: Int.self) == 3)
        }
    }
}

/// One side of a deliberate deadlock: its error (nil if it committed) and how many attempts it took.
struct DeadlockOutcome: Sendable {
    var error: (any Error)?
    var attempts: Int
}

/// Two transactions that lock advisory keys 1 and 2 in opposite orders, each waiting until the
/// other holds its first key before asking for its second: a deadlock PostgreSQL must break.
/// With `retry`, each side runs under `withRetryingTransaction`.
func runDeadlockPair(_ db: TestContext, retry: RetryPolicy?) async throws -> [DeadlockOutcome] {
    try await db.query("CREATE TABLE deadlock_log (side int, attempt int)")
    let firstKeysHeld = LockedBox(0)
    return try await withThrowingTaskGroup(of: DeadlockOutcome.self) { group in
        for side in 0..<2 {
            group.addTask {
                let attempts = LockedBox(0)
                let (first, second) = side == 0 ? (1, 2) : (2, 1)
                let body: @Sendable (Transaction) async throws -> Void = { tx in
                    attempts.withLock { $0 += 1 }
                    try await tx.query("SELECT pg_advisory_xact_lock(\(Int64(first)))")
                    if tx.attempt == 1 {
                        firstKeysHeld.withLock { $0 += 1 }
                        try await waitUntil("both sides hold their first key") { firstKeysHeld.withLock { $0 } >= 2 }
                    }
                    try await tx.query("SELECT pg_advisory_xact_lock(\(Int64(second)))")
                    try await tx.query("INSERT INTO deadlock_log VALUES (\(side), \(tx.attempt))")
                }
                do {
                    if let retry {
                        try await db.client.withRetryingTransaction(retry: retry, logger: db.logger, body)
                    } else {
                        try await db.client.withCheckedTransaction(logger: db.logger) { tx in try await body(tx) }
                    }
                    return DeadlockOutcome(error: nil, attempts: attempts.withLock { $0 })
                } catch {
                    return DeadlockOutcome(error: error, attempts: attempts.withLock { $0 })
                }
            }
        }
        return try await group.reduce(into: []) { $0.append($1) }
    }
}
