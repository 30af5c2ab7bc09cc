import Logging
import PostgresNIO

extension PostgresConnection {
    /// Runs `body` with a ``Transaction`` for the transaction block this connection is already
    /// in: one begun by an ORM (a Fluent `db.transaction { … }`), by SQLKit, or by a `BEGIN` sent
    /// by hand. The library adopts it: it sends no `BEGIN`, no `COMMIT` and no `ROLLBACK`, so
    /// everything done through the ``Transaction`` (transaction-scoped advisory locks, gapless
    /// numbers, exactly-once ingestion, enqueued jobs, fencing checks, ``Transaction/setLockTimeout(_:)``)
    /// commits with the caller's transaction and is undone by its rollback.
    ///
    /// The connection must be inside a transaction block: outside one, every statement would be
    /// its own transaction, and a transaction-scoped lock would be released as soon as it was
    /// taken. That is checked first, with the server (one `SELECT 1`, whose `ReadyForQuery`
    /// carries the transaction status), and refused with
    /// ``PostgresLocksError/Code/notInTransaction`` before anything else is sent.
    ///
    /// If a statement of the body fails, the caller's transaction is aborted on the server, and
    /// only a rollback can end it: the error is rethrown, and so is an error the body caught and
    /// ignored (as ``PostgresLocksError/Code/transactionAborted``), so the caller's transaction
    /// code rolls back instead of sending a `COMMIT` that the server would answer `ROLLBACK`.
    ///
    /// - Parameters:
    ///   - canceller: the client this connection was leased from, if any. A lock wait whose
    ///     task is cancelled is then ended from another of its connections
    ///     (`pg_cancel_backend`), and the caller's connection stays usable. Without one, a
    ///     cancelled lock wait closes the connection (there is no other way to end the wait).
    ///   - logger: where the library's statements are logged.
    ///   - isolation: the actor `body` runs on; the caller's (`#isolation`) by default.
    ///   - body: the work; its ``Transaction`` must not be used after it returns.
    /// - Throws: ``PostgresLocksError/Code/notInTransaction`` outside a transaction block,
    ///   ``PostgresLocksError/Code/inFailedTransaction`` if the block has already failed, and
    ///   whatever `body` throws.
    public func withAdoptedTransaction<Result>(
        canceller: PostgresClient? = nil,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        guard !isClosed else { throw PostgresLocksError.connectionLost("before sending a statement") }
        let watch = ConnectionWatch.watch(self)
        try await requireOpenTransactionBlock(watch: watch, logger: logger)
        let transaction = Transaction(connection: self, watch: watch, logger: logger, attempt: 1, canceller: canceller)
        let value: Result
        do {
            value = try await body(transaction)
        } catch {
            throw PostgresLocksError.wrap(error)
        }
        if let aborting = transaction.abortingError {
            throw PostgresLocksError(
                code: .transactionAborted,
                message: "the body caught an error that aborted the adopted transaction; it can only be rolled back: \(aborting)",
                sqlState: (aborting as? PostgresLocksError)?.sqlState,
                underlying: aborting
            )
        }
        return value
    }

    /// Throws unless the connection is inside a transaction block that has not failed. The
    /// server is asked every time (`SELECT 1`, one round trip): the last status read may be
    /// stale (the `ReadyForQuery` after someone else's `COMMIT` can arrive in a later read than
    /// its result), and adopting a connection outside a transaction would release every
    /// transaction-scoped lock at once. The answer's own `ReadyForQuery` is read first.
    func requireOpenTransactionBlock(watch: ConnectionWatch, logger: Logger) async throws {
        let tracker = watch.transactionStatus
        let before = tracker.snapshot.readyCount
        do {
            try await runStatement("SELECT 1", watch: watch, logger: logger)
        } catch let error as PostgresLocksError where error.code == .inFailedTransaction {
            // Refused because the block failed: reported below.
        }
        // A statement returns once its ReadyForQuery has been read (see `whileOpen`), so the
        // status is this statement's. A stream the handler cannot follow never counts one:
        // then the status stays unknown.
        let status = tracker.snapshot.readyCount == before ? nil : tracker.status
        switch status {
        case .inTransaction?:
            return
        case .failed?:
            throw PostgresLocksError(
                code: .inFailedTransaction,
                message: "the transaction to adopt has already failed: only a rollback can end it. Nothing was sent.",
                sqlState: "25P02"
            )
        case .idle?:
            throw PostgresLocksError(
                code: .notInTransaction,
                message: "the connection is not inside a transaction block: each statement would commit on its own, and a transaction-scoped lock would be released at once. Nothing was run.",
                hint: "call it inside the caller's transaction (Fluent: db.transaction { db in … }; by hand: after BEGIN), or use withCheckedTransaction to let the library open one"
            )
        case nil:
            throw PostgresLocksError(
                code: .notInTransaction,
                message: "the connection's transaction status could not be read, so the transaction to adopt could not be confirmed. Nothing was run."
            )
        }
    }
}
