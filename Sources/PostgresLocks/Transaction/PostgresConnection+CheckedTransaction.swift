import Logging
import PostgresNIO

extension PostgresConnection {
    /// The checked transaction, run as `attempt`. With `attempt.readsTransactionID`, the
    /// transaction id is read before `COMMIT`, and a `COMMIT` lost in flight throws
    /// ``UnsettledCommit`` (carrying the id and the body's result) for the caller to settle; see
    /// ``RetryPolicy/resolveCommitOutcome``.
    ///
    /// With a `leading` statement in `attempt` (a hot statement the caller would send first in
    /// the body, such as a try-lock), it is chained on the event loop right after `BEGIN`, so
    /// that the caller's task waits once for both, and its rows are handed to the body. Without
    /// one the body gets no rows. A failure of `leading` aborts the transaction as if the body had sent
    /// it, except that a `leading` statement the server no longer has prepared (26000, nothing
    /// but `BEGIN` ran) is sent again once with a new `BEGIN`. With a lock or statement timeout
    /// in `options`, `leading` is sent after the settings instead, without that retry.
    func runCheckedTransaction<Result>(
        options: TransactionOptions,
        logger: Logger,
        attempt: TransactionAttempt = TransactionAttempt(),
        canceller: PostgresClient? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction, [PostgresRow]) async throws -> sending Result
    ) async throws -> sending Result {
        let timeouts = try options.timeoutSettings()
        // A connection leased from a client (it came with one to cancel waits) never holds an
        // open transaction of the library's when leased: a non-idle status there is a dead
        // session's last word, or someone's leak, and is worth one statement to confirm.
        let watch = ConnectionWatch.watch(self)
        try await refuseNestedTransaction(watch: watch, confirmingAnyStatus: canceller != nil, logger: logger)
        let transaction = Transaction(connection: self, watch: watch, logger: logger, attempt: attempt.number, canceller: canceller)
        watch.libraryTransactionOpen = true
        let begin = PreparedSQL(options.beginStatement)
        let settingTimeouts = timeouts.lockTimeout != nil || timeouts.statementTimeout != nil
        var leadingRows: [PostgresRow] = []
        if let leading = attempt.leading, !settingTimeouts {
            leadingRows = try await beginChained(begin, leading: leading, watch: watch, logger: logger)
        } else {
            try await self.runPrepared(begin, watch: watch, outsideTransaction: true, logger: logger)
        }

        let value: Result
        do {
            if settingTimeouts {
                try await transaction.query(
                    "SELECT set_config('lock_timeout', COALESCE(\(timeouts.lockTimeout), current_setting('lock_timeout')), true), set_config('statement_timeout', COALESCE(\(timeouts.statementTimeout), current_setting('statement_timeout')), true)"
                )
                if let leading = attempt.leading { leadingRows = try await transaction.queryPrepared(leading) }
            }
            value = try await body(transaction, leadingRows)
        } catch {
            await self.rollbackAfterFailure(watch: watch, logger: logger)
            throw PostgresLocksError.wrap(error)
        }

        if let aborting = transaction.abortingError {
            await self.rollbackAfterFailure(watch: watch, logger: logger)
            throw PostgresLocksError(
                code: .transactionAborted,
                message: "the body caught an error that aborted the transaction, so nothing was committed: \(aborting)",
                sqlState: (aborting as? PostgresLocksError)?.sqlState,
                underlying: aborting
            )
        }

        // Optional (RetryPolicy.resolveCommitOutcome): the id a lost COMMIT is settled by. NULL
        // when the transaction wrote nothing: then there is nothing to commit.
        var transactionID: UInt64?
        if attempt.readsTransactionID {
            do {
                transactionID = try await transaction.queryPrepared(CommitOutcomeSQL.currentTransactionID).first
                    .flatMap { try $0.decode(String?.self) }.flatMap(UInt64.init)
            } catch {
                await self.rollbackAfterFailure(watch: watch, logger: logger)
                throw PostgresLocksError.wrap(error)
            }
        }

        // A connection already closed: COMMIT is never sent, the server rolls back (or has).
        guard !self.isClosed else {
            throw PostgresLocksError(
                code: .connectionLost,
                message: "the connection to the server was lost before COMMIT was sent: the server rolls the transaction back, nothing was committed"
            )
        }
        let answeredRollback: Bool
        do {
            answeredRollback = try await commit(watch: watch, logger: logger)
            watch.libraryTransactionEnded()
        } catch {
            // A server's answer (a deferred constraint, 40001 at commit) means not committed.
            // A lost connection means COMMIT may or may not have been applied.
            let wrapped = PostgresLocksError.wrap(error)
            let lost = (wrapped as? PostgresLocksError).map { $0.code == .connectionLost || ($0.sqlState == nil && self.isClosed) } ?? false
            guard lost else {
                guard (wrapped as? PostgresLocksError)?.sqlState == "26000" else { throw wrapped }
                // Refused before it ran: the body deallocated the prepared COMMIT (`DEALLOCATE
                // ALL`). The transaction is still open, and aborted by the refusal: end it.
                await self.rollbackAfterFailure(watch: watch, logger: logger)
                throw PostgresLocksError(
                    code: .transactionAborted,
                    message: "COMMIT was refused because the body deallocated the library's prepared statements (DEALLOCATE ALL) inside the transaction; nothing was committed",
                    sqlState: "26000",
                    hint: "do not run DEALLOCATE ALL inside a checked transaction, or turn statement preparation off for this client or connection (statementPreparation = .disabled)",
                    underlying: wrapped
                )
            }
            throw CommitOutcomeSQL.lostCommit(wrapped, readsTransactionID: attempt.readsTransactionID, transactionID: transactionID, value: value)
        }
        if answeredRollback {
            throw PostgresLocksError(
                code: .transactionAborted,
                message: "COMMIT answered ROLLBACK: a statement sent outside the Transaction handle failed and its error was not seen; nothing was committed"
            )
        }
        return value
    }

    /// `BEGIN` with `leading` chained after it; returns `leading`'s rows. If `leading` fails,
    /// the transaction is rolled back and the error thrown, except once for a prepared statement
    /// the server no longer has (26000): nothing but `BEGIN` ran, so both are sent again.
    private func beginChained(_ begin: PreparedSQL, leading: PreparedSQL, watch: ConnectionWatch, logger: Logger) async throws -> [PostgresRow] {
        var retried = false
        while true {
            watch.libraryTransactionOpen = true
            do {
                return try await self.runPrepared(begin, then: leading, watch: watch, logger: logger)
            } catch {
                guard !error.failedFirst else { throw error.error }
                await self.rollbackAfterFailure(watch: watch, logger: logger)
                let lostStatement = (error.error as? PostgresLocksError)?.sqlState == "26000"
                guard lostStatement, !retried, !self.isClosed else { throw PostgresLocksError.wrap(error.error) }
                retried = true
            }
        }
    }

    /// Sends `COMMIT` and returns whether the server answered `ROLLBACK` (the transaction had
    /// failed: a statement sent outside the ``Transaction`` handle raised an error nobody read).
    ///
    /// PostgresNIO returns no command tag for a prepared statement, so where the connection's
    /// stream is followed (``TransactionStatusTracker/rollbackTagCount``) `COMMIT` runs prepared
    /// and the tag is read from the count of `ROLLBACK` tags, before and after; elsewhere it runs
    /// unnamed and the tag comes with the result.
    private func commit(watch: ConnectionWatch, logger: Logger) async throws -> Bool {
        let tracker = watch.transactionStatus
        if let before = tracker.rollbackTagCount {
            try await self.runPrepared(Self.commitStatement, watch: watch, logger: logger)
            guard let after = tracker.rollbackTagCount else {
                // The stream stopped being followed during COMMIT: its answer is unknown, and the
                // connection is not to be trusted with another transaction.
                await closeDiscardingErrors()
                throw PostgresLocksError(
                    code: .connectionLost,
                    message: "COMMIT was answered but its command tag could not be read; the connection was closed"
                )
            }
            return after != before
        }
        return try await self.runStatement("COMMIT", watch: watch, logger: logger).metadata.command == "ROLLBACK"
    }

    /// `COMMIT` as a hot statement (prepared once per connection).
    private static let commitStatement = PreparedSQL("COMMIT")

    /// Throws ``PostgresLocksError/Code/nestedTransaction`` when this connection is already
    /// inside a transaction block (opened by an ORM or by hand): a checked transaction's
    /// `BEGIN` would only warn, and its `COMMIT` would end the outer transaction early.
    ///
    /// The status comes from the last `ReadyForQuery` the server sent (see
    /// ``TransactionStatusTracker``), so nothing is sent when it is idle, or when it shows the
    /// caller's own outer transaction. When it is unknown, when a transaction the library began
    /// was never seen to end, or (`confirmingAnyStatus`, a pooled connection) when it is not
    /// idle, one read-only `SELECT 1` asks first. Right after the library's own `COMMIT` or
    /// `ROLLBACK` the session is idle whatever the last status read says: PostgresNIO ends a
    /// statement at its `CommandComplete`, and the `ReadyForQuery` that follows can arrive in a
    /// later read (see ``ConnectionWatch/knownTransactionStatus``).
    func refuseNestedTransaction(watch: ConnectionWatch, confirmingAnyStatus: Bool, logger: Logger) async throws {
        guard !isClosed else { throw PostgresLocksError.connectionLost("before sending a statement") }
        let tracker = watch.transactionStatus
        var status = watch.knownTransactionStatus
        // An unknown status, a transaction block the library opened itself and did not see end,
        // and (on a pooled connection) any non-idle status are confirmed before they are
        // believed: the status may be a dead session's last word (a backend terminated
        // mid-transaction sends no ReadyForQuery). One read-only statement asks the server; a
        // dead session throws connectionLost here instead. On a connection the caller holds, an
        // outer transaction is refused with nothing sent.
        if status == nil || (status != .idle && (watch.libraryTransactionOpen || confirmingAnyStatus)) {
            do {
                try await runStatement("SELECT 1", watch: watch, logger: logger)
            } catch let error as PostgresLocksError where error.code == .inFailedTransaction {
                // Refused because a transaction block failed: the status below says so.
            }
            status = tracker.status
            if status != .idle && watch.libraryTransactionOpen {
                // Still inside the library's own interrupted transaction: never build on it.
                await closeDiscardingErrors()
                throw PostgresLocksError.connectionLost("a transaction this library began on the connection was never seen to end; the connection was closed")
            }
        }
        switch status {
        case .inTransaction?, .failed?:
            throw PostgresLocksError(
                code: .nestedTransaction,
                message: "this connection is already inside a transaction\(status == .failed ? " (a failed one)" : ""), opened outside this call (by an ORM's transaction or a BEGIN sent by hand): a checked transaction here would COMMIT that outer transaction early. Nothing was sent.",
                hint: "run the work on a connection that is not in a transaction, or inside the outer transaction itself rather than as a transaction of its own"
            )
        case .idle?, nil:
            return
        }
    }

    /// Rolls back after the body failed. If the rollback cannot be confirmed on a live
    /// connection, the connection is closed so its open transaction cannot be reused.
    func rollbackAfterFailure(watch: ConnectionWatch, logger: Logger) async {
        guard !self.isClosed else { return }
        do {
            try await self.runStatement("ROLLBACK", watch: watch, logger: logger)
            watch.libraryTransactionEnded()
        } catch {
            // A lost connection is expected under faults (the server rolled back); anything else is worth a warning.
            let level: Logger.Level = (error as? PostgresLocksError)?.code == .connectionLost ? .debug : .warning
            logger.log(level: level, "ROLLBACK failed; closing the connection so its state is not reused", metadata: ["error": .error(error)])
            await self.closeDiscardingErrors()
        }
    }

    /// Closes the connection (a pooled one is then dropped and replaced by its pool).
    func closeDiscardingErrors() async {
        guard !self.isClosed else { return }
        try? await self.close()
    }
}
