import Logging
import PostgresNIO
import Synchronization

/// An open transaction on one connection, handed to the body of
/// ``TransactionRunner/withCheckedTransaction(options:logger:isolation:_:)``.
///
/// Run statements through ``query(_:)``: it reads every row (so errors raised while
/// producing rows are thrown, not lost), maps errors to ``PostgresLocksError``, and remembers
/// the first error that aborted the transaction, so a body that catches and ignores an error
/// cannot make the transaction look committed.
public final class Transaction: Sendable {
    /// The connection the transaction runs on. Statements sent on it directly bypass this
    /// type's checks (their rows must be read to see their errors); the `COMMIT` check
    /// still catches a transaction they aborted.
    public let connection: PostgresConnection
    /// The logger statements are logged to.
    public let logger: Logger
    /// Which attempt this is: 1 for the first run, 2 for the first retry, and so on.
    public let attempt: Int
    /// The client that ends this transaction's server-side lock waits when their task is
    /// cancelled (`pg_cancel_backend` from another of its connections): the client the
    /// connection was leased from. Nil on a dedicated connection, where a cancelled wait closes
    /// the connection instead (PostgresNIO sends no cancel request).
    let canceller: PostgresClient?
    /// The connection's watch, looked up once for the transaction's statements.
    let watch: ConnectionWatch

    private let state = Mutex(State())

    private struct State {
        var abortingError: (any Error)?
        var savepointCounter = 0
    }

    init(connection: PostgresConnection, watch: ConnectionWatch, logger: Logger, attempt: Int, canceller: PostgresClient?) {
        self.connection = connection
        self.watch = watch
        self.logger = logger
        self.attempt = attempt
        self.canceller = canceller
    }

    /// Runs one statement in the transaction and returns all of its rows and its command tag.
    ///
    /// - Throws: ``PostgresLocksError`` (deadlock, lock not available, connection lost, …).
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresQueryResult {
        try await recordingAbort { try await connection.runStatement(query, watch: watch, logger: logger) }
    }

    /// Runs one of the library's hot statements, prepared (see ``StatementPreparation``), and
    /// returns its rows.
    @discardableResult
    func queryPrepared(_ statement: PreparedSQL) async throws -> [PostgresRow] {
        try await recordingAbort { try await connection.runPrepared(statement, watch: watch, logger: logger) }
    }

    /// Runs `statement` (one statement on this transaction's connection), marking the
    /// transaction aborted if it fails.
    func recordingAbort<Value>(
        isolation: isolated (any Actor)? = #isolation,
        _ statement: () async throws -> sending Value
    ) async throws -> sending Value {
        do {
            return try await statement()
        } catch {
            recordAbort(error)
            throw error
        }
    }

    /// The error that aborted this transaction, if a statement failed.
    public var abortingError: (any Error)? {
        state.withLock { $0.abortingError }
    }

    /// Runs `body` inside a savepoint. If `body` throws, the transaction is rolled back to the
    /// savepoint (so it can go on) and the error is rethrown.
    @discardableResult
    public func withSavepoint<T>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> sending T
    ) async throws -> sending T {
        let (name, previousAbort) = state.withLock { state -> (String, (any Error)?) in
            state.savepointCounter += 1
            return ("pglocks_savepoint_\(state.savepointCounter)", state.abortingError)
        }
        try await query(PostgresQuery(unsafeSQL: "SAVEPOINT \(name)"))
        do {
            let value = try await body()
            try await query(PostgresQuery(unsafeSQL: "RELEASE SAVEPOINT \(name)"))
            return value
        } catch {
            if !connection.isClosed {
                try await query(PostgresQuery(unsafeSQL: "ROLLBACK TO SAVEPOINT \(name)"))
                state.withLock { $0.abortingError = previousAbort }
            }
            throw error
        }
    }

    func recordAbort(_ error: any Error) {
        guard let error = error as? PostgresLocksError, error.sqlState != nil || error.code == .connectionLost else { return }
        state.withLock { state in
            if state.abortingError == nil { state.abortingError = error }
        }
    }
}
