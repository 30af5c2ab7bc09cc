import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Testing

/// Lost connections: a transaction the server rolled back is re-run, one whose `COMMIT` was in
/// flight is settled through `pg_xact_status()`, and nothing is ever written twice.
///
/// A `COMMIT` in flight is made deterministic with a deferred constraint trigger on `items`: it
/// runs at `COMMIT` and takes an advisory lock (the "commit gate") that the test holds on
/// another connection. While `COMMIT` waits on the server, the test either terminates the
/// backend (the transaction aborts) or closes the client's socket and then opens the gate (the
/// server finishes `COMMIT` for a client that is no longer there: it committed, and the client
/// never read the reply).
@Suite("Commit outcome")
struct CommitOutcomeTests {
    @Test func connectionLossRetriesOnlyWhenAskedAndNothingCommitted() {
        let lost = PostgresLocksError(code: .connectionLost, message: "x")
        let unknown = PostgresLocksError(code: .commitOutcomeUnknown, message: "x")
        #expect(!RetryPolicy.default.shouldRetry(lost, afterAttempt: 1))
        #expect(RetryPolicy(retryOnConnectionLoss: true).shouldRetry(lost, afterAttempt: 1))
        #expect(!RetryPolicy(maximumAttempts: 2, retryOnConnectionLoss: true).shouldRetry(lost, afterAttempt: 2))
        #expect(!RetryPolicy.resolvingCommitOutcome.shouldRetry(unknown, afterAttempt: 1))
        #expect(throws: PostgresLocksError.self) { try RetryPolicy(commitOutcomeWait: .seconds(-1)).validate() }
    }

    @Test func aConnectionLostBeforeCommitIsReRunAndTheRowIsWrittenOnce() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.query("CREATE TABLE plain_items (id text PRIMARY KEY, attempt int NOT NULL)")
            let attempts = LockedBox<[Int]>([])
            let result = try await withinTimeLimit(.seconds(20), "the re-run transaction") {
                try await db.client.withRetryingTransaction(retry: RetryPolicy(retryOnConnectionLoss: true), logger: db.logger) { tx in
                    attempts.withLock { $0.append(tx.attempt) }
                    try await tx.query("INSERT INTO plain_items (id, attempt) VALUES ('only', \(tx.attempt))")
                    if tx.attempt == 1 {
                        // Another session ends this backend while the body runs: the server
                        // rolls the open transaction back.
                        let pid = try await tx.query("SELECT pg_backend_pid()").rows[0].decode(Int32.self)
                        try await db.query("SELECT pg_terminate_backend(\(pid))")
                        try await waitUntil("the client saw the socket close") { tx.connection.isClosed }
                        try await tx.query("SELECT 1")
                    }
                    return tx.attempt
                }
            }
            // Re-run once the body could run again (an attempt can end before the body when the
            // pool hands back the dead connection before it noticed the close).
            #expect(result > 1)
            #expect(attempts.value == [1, result])
            #expect(try await db.scalar("SELECT count(*)::int FROM plain_items", as: Int.self) == 1)
            #expect(try await db.scalar("SELECT attempt FROM plain_items", as: Int.self) == result)
        }
    }

    @Test func aConnectionLostBeforeCommitIsNotReRunByDefault() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.query("CREATE TABLE plain_items (id text PRIMARY KEY, attempt int NOT NULL)")
            let attempts = LockedBox(0)
            let error = await #expect(throws: PostgresLocksError.self) {
                try await db.client.withRetryingTransaction(logger: db.logger) { tx in
                    attempts.withLock { $0 += 1 }
                    try await tx.query("INSERT INTO plain_items (id, attempt) VALUES ('only', \(tx.attempt))")
                    let pid = try await tx.query("SELECT pg_backend_pid()").rows[0].decode(Int32.self)
                    try await db.query("SELECT pg_terminate_backend(\(pid))")
                    try await waitUntil("the client saw the socket close") { tx.connection.isClosed }
                    try await tx.query("SELECT 1")
                }
            }
            #expect(error?.code == .connectionLost)
            #expect(attempts.value == 1)
            #expect(try await db.scalar("SELECT count(*)::int FROM plain_items", as: Int.self) == 0)
        }
    }

    @Test func aCommitLostInFlightThatCommittedReturnsItsResultWithoutReRunning() async throws {
        try await CommitGate.withGate { db, gate in
            let task = gate.startTransaction(policy: .resolvingCommitOutcome)
            let (_, connection) = try await gate.waitForCommit()
            // The client's socket closes while COMMIT waits at the gate; then the gate opens and
            // the server commits for a client that never reads the reply.
            try await connection.close()
            try await gate.open()
            let result = try await withinTimeLimit(.seconds(20), "the settled transaction") { try await task.value }
            #expect(result == 1, "the committed attempt's result, not a re-run")
            #expect(gate.attempts == [1])
            #expect(try await gate.scalar("SELECT count(*)::int FROM items", as: Int.self) == 1)
            #expect(try await gate.scalar("SELECT attempt FROM items", as: Int.self) == 1)
        }
    }

    @Test func aCommitLostInFlightThatAbortedIsReRunAndTheRowIsWrittenOnce() async throws {
        try await CommitGate.withGate { db, gate in
            let task = gate.startTransaction(policy: .resolvingCommitOutcome)
            let (pid, _) = try await gate.waitForCommit()
            // The backend is terminated while COMMIT waits at the gate: the transaction aborts.
            try await gate.run("SELECT pg_terminate_backend(\(pid))")
            try await waitUntil("the terminated backend is gone") {
                try await gate.scalar("SELECT count(*)::int FROM pg_stat_activity WHERE pid = \(pid)", as: Int.self) == 0
            }
            try await gate.open()
            let result = try await withinTimeLimit(.seconds(20), "the re-run transaction") { try await task.value }
            #expect(result == 2, "re-run after the server reported the first attempt aborted")
            #expect(gate.attempts == [1, 2])
            #expect(try await gate.scalar("SELECT count(*)::int FROM items", as: Int.self) == 1)
            #expect(try await gate.scalar("SELECT attempt FROM items", as: Int.self) == 2)
        }
    }

    @Test func aCommitLostInFlightWithoutTheOptionIsReportedUnknown() async throws {
        try await CommitGate.withGate { db, gate in
            let task = gate.startTransaction()
            let (_, connection) = try await gate.waitForCommit()
            try await connection.close()
            try await gate.open()
            let outcome = try await withinTimeLimit(.seconds(20), "the transaction") { await task.result }
            let error = try #require(outcome.failure as? PostgresLocksError)
            #expect(error.code == .commitOutcomeUnknown)
            #expect(error.transactionID == nil)
            #expect(gate.attempts == [1])
            // It did commit: "unknown" was the honest answer, connectionLost would have lied.
            try await waitUntil("the server finished COMMIT") {
                try await gate.scalar("SELECT count(*)::int FROM items", as: Int.self) == 1
            }
        }
    }

    @Test func anOutcomeThatCannotBeAskedOnADedicatedConnectionStaysUnknownWithItsTransactionID() async throws {
        try await CommitGate.withGate { db, gate in
            let connection = try await db.makeConnection()
            let transactionID = LockedBox<UInt64?>(nil)
            let task = Task {
                // A dedicated connection has no client to ask once it is gone.
                try await connection.withRetryingTransaction(retry: .resolvingCommitOutcome, logger: db.logger) { tx in
                    try await gate.insertItem(tx)
                    let id = try await tx.query("SELECT pg_current_xact_id()::text").rows[0].decode(String.self)
                    transactionID.withLock { $0 = UInt64(id) }
                }
            }
            _ = try await gate.waitForCommit()
            try await connection.close()
            let outcome = try await withinTimeLimit(.seconds(20), "the transaction") { await task.result }
            let error = try #require(outcome.failure as? PostgresLocksError)
            #expect(error.code == .commitOutcomeUnknown)
            let id = try #require(transactionID.value)
            #expect(error.transactionID == id)
            #expect(gate.attempts == [1])
            // The id settles it later, from another connection.
            try await gate.open()
            try await waitUntil("the server finished COMMIT") {
                try await db.client.transactionStatus(id, logger: db.logger) != .inProgress
            }
            #expect(try await db.client.transactionStatus(id, logger: db.logger) == .committed)
            #expect(try await gate.scalar("SELECT count(*)::int FROM items", as: Int.self) == 1)
        }
    }

    @Test func aCommitStillInProgressAfterTheWaitStaysUnknownWithItsTransactionID() async throws {
        try await CommitGate.withGate { db, gate in
            var policy = RetryPolicy.resolvingCommitOutcome
            policy.commitOutcomeWait = .milliseconds(300)
            let task = gate.startTransaction(policy: policy)
            let (pid, connection) = try await gate.waitForCommit()
            try await connection.close()
            // The gate stays shut: the server's COMMIT is still in progress for as long as the
            // client asks, so the outcome cannot be settled.
            let outcome = try await withinTimeLimit(.seconds(20), "the transaction") { await task.result }
            let error = try #require(outcome.failure as? PostgresLocksError)
            #expect(error.code == .commitOutcomeUnknown)
            let id = try #require(error.transactionID)
            #expect(try await gate.scalar("SELECT backend_xid::text FROM pg_stat_activity WHERE pid = \(pid)", as: String.self) == String(id % (1 << 32)))
            #expect(gate.attempts == [1])
            #expect(try await db.client.transactionStatus(id, logger: db.logger) == .inProgress)
            try await gate.open()
            try await waitUntil("the server finished COMMIT") {
                try await db.client.transactionStatus(id, logger: db.logger) == .committed
            }
        }
    }

    // PostgresNIO ends a statement at its CommandComplete. Outside a transaction block the
    // server commits after that, when it handles the Sync; a backend ended in between sends the
    // buffered CommandComplete (and the rows) with its fatal error, and the statement rolls back.
    // The gate holds that commit open; the backend is terminated there.

    /// Where an autocommit statement runs: a client's pool or a connection of one's own.
    enum StatementRunner: String, CaseIterable, Sendable {
        case client, connection
    }

    @Test(arguments: StatementRunner.allCases)
    func anAutocommitStatementWhoseBackendEndsBeforeItCommitsThrows(on runner: StatementRunner) async throws {
        try await CommitGate.withGate { db, gate in
            let connection = runner == .connection ? try await db.makeConnection() : nil
            let insert: PostgresQuery = "INSERT INTO items (id, attempt) VALUES ('only', 1) RETURNING id"
            let task = Task {
                if let connection { return try await connection.checkedQuery(insert, logger: db.logger).rows.count }
                return try await db.client.checkedQuery(insert, logger: db.logger).rows.count
            }
            try await gate.terminateStatementAtTheGate(startingWith: "INSERT INTO items")
            let outcome = try await withinTimeLimit(.seconds(20), "the statement") { await task.result }
            #expect((outcome.failure as? PostgresLocksError)?.code == .connectionLost, "rolled back, yet reported: \(outcome)")
            #expect(try await gate.scalar("SELECT count(*)::int FROM items", as: Int.self) == 0)
        }
    }

    @Test func anAutocommitStatementThatCommitsIsReportedOnceItsCommitIsDone() async throws {
        try await CommitGate.withGate { db, gate in
            let task = Task {
                try await db.client.checkedQuery("INSERT INTO items (id, attempt) VALUES ('only', 1) RETURNING id", logger: db.logger).rows.count
            }
            _ = try await gate.waitForStatementAtTheGate(startingWith: "INSERT INTO items")
            try await gate.open()
            let rows = try await withinTimeLimit(.seconds(20), "the statement") { try await task.value }
            #expect(rows == 1)
            #expect(try await gate.scalar("SELECT count(*)::int FROM items", as: Int.self) == 1)
        }
    }
}

/// A deferred trigger on `items` that makes `COMMIT` wait for an advisory lock the test holds.
private final class CommitGate: Sendable {
    static let key: Int64 = 4_242_001

    let db: TestContext
    /// Holds the gate's lock.
    let holder: PostgresConnection
    /// Watches and terminates backends (a dedicated connection: the pool could hand out the
    /// connection a terminated backend is closing).
    let observer: PostgresConnection
    private let seen = LockedBox<[(pid: Int32, connection: PostgresConnection, attempt: Int)]>([])

    private init(db: TestContext, holder: PostgresConnection, observer: PostgresConnection) {
        self.db = db
        self.holder = holder
        self.observer = observer
    }

    /// Runs one statement on the observer connection.
    func run(_ query: PostgresQuery) async throws {
        _ = try await observer.query(query, logger: db.logger).collect()
    }

    /// The first column of the first row, on the observer connection.
    func scalar<T: PostgresDecodable>(_ query: PostgresQuery, as type: T.Type = T.self) async throws -> T {
        let rows = try await observer.query(query, logger: db.logger).collect()
        guard let row = rows.first else { throw TestFailure("no row for \(query.sql)") }
        return try row.decode(T.self)
    }

    /// Runs `body` on a fresh database with `items`, its gate trigger and a shut gate, and
    /// closes the gate's connections afterwards.
    static func withGate(_ test: String = #function, _ body: @Sendable (TestContext, CommitGate) async throws -> Void) async throws {
        try await TestDatabase.withDatabase(test) { db in
            let gate = try await install(db)
            defer { gate.shutDown() }
            try await body(db, gate)
        }
    }

    /// Starts a retrying transaction on the test's client whose body is ``insertItem(_:)``; its
    /// result is the attempt that returned.
    func startTransaction(policy: RetryPolicy = .default) -> Task<Int, any Error> {
        let db = self.db
        return Task {
            try await db.client.withRetryingTransaction(retry: policy, logger: db.logger) { tx in
                try await self.insertItem(tx)
                return tx.attempt
            }
        }
    }

    /// Creates `items` and its gate trigger, and shuts the gate.
    static func install(_ db: TestContext) async throws -> CommitGate {
        try await db.query("CREATE TABLE items (id text PRIMARY KEY, attempt int NOT NULL)")
        try await db.query("""
            CREATE FUNCTION wait_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_advisory_xact_lock(\(unescaped: String(key))); RETURN NULL; END $$
            """)
        try await db.query("""
            CREATE CONSTRAINT TRIGGER items_wait_at_commit AFTER INSERT ON items
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION wait_at_commit()
            """)
        let holder = try await db.makeConnection()
        _ = try await holder.query("SELECT pg_advisory_lock(\(key))", logger: db.logger).collect()
        return CommitGate(db: db, holder: holder, observer: try await db.makeConnection())
    }

    /// The body's work: records who runs it, inserts the one row.
    func insertItem(_ tx: Transaction) async throws {
        let pid = try await tx.query("SELECT pg_backend_pid()").rows[0].decode(Int32.self)
        seen.withLock { $0.append((pid, tx.connection, tx.attempt)) }
        try await tx.query("INSERT INTO items (id, attempt) VALUES ('only', \(tx.attempt))")
    }

    /// The attempts that ran the body.
    var attempts: [Int] { seen.value.map(\.attempt) }

    /// Waits until the latest attempt's backend waits at the gate inside `COMMIT`.
    func waitForCommit() async throws -> (Int32, PostgresConnection) {
        try await waitUntil("COMMIT waits at the gate") {
            guard let pid = seen.value.last?.pid else { return false }
            return try await scalar(
                "SELECT count(*)::int FROM pg_stat_activity WHERE pid = \(pid) AND wait_event_type = 'Lock' AND query = 'COMMIT'",
                as: Int.self
            ) == 1
        }
        let last = seen.value.last!
        return (last.pid, last.connection)
    }

    /// Waits until a statement starting with `prefix`, sent outside a transaction block, waits
    /// at the gate (its implicit commit runs the trigger); returns its backend.
    func waitForStatementAtTheGate(startingWith prefix: String) async throws -> Int32 {
        try await db.backendWaitingOnALock(runningStatementLike: "\(prefix)%", observer: observer)
    }

    /// Waits until a statement starting with `prefix` waits at the gate, and terminates its
    /// backend there.
    func terminateStatementAtTheGate(startingWith prefix: String) async throws {
        let pid = try await waitForStatementAtTheGate(startingWith: prefix)
        try await run("SELECT pg_terminate_backend(\(pid))")
    }

    /// Opens the gate: `COMMIT`s waiting at it go on.
    func open() async throws {
        _ = try await holder.query("SELECT pg_advisory_unlock(\(Self.key))", logger: db.logger).collect()
    }

    /// Closes the gate's connections (opening the gate if it is still shut).
    func shutDown() {
        let (holder, observer) = (self.holder, self.observer)
        Task {
            try? await holder.close()
            try? await observer.close()
        }
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
