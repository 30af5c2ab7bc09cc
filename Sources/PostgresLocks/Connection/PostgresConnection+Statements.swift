import NIOCore
import PostgresNIO
import Synchronization

/// Which of two chained statements failed (see
/// `PostgresConnection.runPrepared(_:then:watch:logger:)`), and how.
struct ChainedStatementError: Error {
    /// The first statement failed: the second was never sent.
    var failedFirst: Bool
    /// The error, as ``PostgresLocksError/wrap(_:)`` maps it.
    var error: any Error
}

extension PostgresConnection {
    /// Runs one statement, reads all of its rows, and returns them with the command tag.
    ///
    /// This and ``runPrepared(_:outsideTransaction:logger:)`` are how `PostgresLocks` talks to
    /// the server (the one exception is the pooler check's `SHOW VERSION` in
    /// `identifyPooler`, a simple query a pooler answers itself). Both close four driver traps:
    /// - every row is read, so an error raised while producing rows (a 40P01 from
    ///   `SELECT pg_advisory_xact_lock(…)`) is thrown instead of dropped;
    /// - a closed connection makes the call throw ``PostgresLocksError/Code/connectionLost``
    ///   at once instead of waiting forever;
    /// - driver errors are mapped to ``PostgresLocksError``;
    /// - the call returns once the statement's `ReadyForQuery` is read, not at its
    ///   `CommandComplete` (outside a transaction block the commit comes in between; see
    ///   ``whileOpen(_:_:)``).
    @discardableResult
    func runStatement(_ query: PostgresQuery, logger: Logger) async throws -> PostgresQueryResult {
        try await runStatement(query, watch: ConnectionWatch.watch(self), logger: logger)
    }

    /// ``runStatement(_:logger:)`` with this connection's watch already at hand (a transaction
    /// looks it up once).
    @discardableResult
    func runStatement(_ query: PostgresQuery, watch: ConnectionWatch, logger: Logger) async throws -> PostgresQueryResult {
        try await whileOpen(watch) { self.query(query, logger: logger) }
    }

    /// Runs one of the library's hot statements as a named prepared statement (prepared on
    /// first use on this connection), with the same guarantees as ``runStatement(_:logger:)``,
    /// and returns all of its rows. Runs it unnamed when ``StatementPreparation`` is disabled or fell back, or the
    /// connection's share of prepared statements is used up.
    ///
    /// If the server no longer has the statement (26000, after a `DEALLOCATE ALL` or
    /// `DISCARD ALL` sent by someone else), every statement is prepared again on its next use
    /// (and the connection falls back to unnamed statements when it happens again);
    /// a statement sent `outsideTransaction` (nothing ran, nothing is aborted) is retried at
    /// once, one inside a transaction throws (the transaction is aborted).
    @discardableResult
    func runPrepared(_ statement: PreparedSQL, outsideTransaction: Bool = false, logger: Logger) async throws -> [PostgresRow] {
        try await runPrepared(statement, watch: ConnectionWatch.watch(self), outsideTransaction: outsideTransaction, logger: logger)
    }

    /// ``runPrepared(_:outsideTransaction:logger:)`` with this connection's watch at hand.
    @discardableResult
    func runPrepared(_ statement: PreparedSQL, watch: ConnectionWatch, outsideTransaction: Bool = false, logger: Logger) async throws -> [PostgresRow] {
        let route = preparedRoute(statement, watch: watch)
        do {
            return try await whileOpen(watch) { self.start(statement, route: route, watch: watch, logger: logger) }
        } catch let error as PostgresLocksError where error.sqlState == "26000" {
            noteLostStatements(preparedNow: route.preparesNow, watch: watch, logger: logger)
            guard outsideTransaction else { throw error }
            return try await runPrepared(statement, watch: watch, outsideTransaction: false, logger: logger)
        }
    }

    /// Runs `first` (a hot statement sent outside a transaction, such as `BEGIN`) and then
    /// `second`, chained on the connection's event loop: the caller's task waits once for both
    /// instead of being resumed between them. Returns `second`'s rows.
    ///
    /// - Throws: ``ChainedStatementError`` saying which of the two failed (and the error), with
    ///   the same guarantees and the same handling of lost prepared statements as
    ///   ``runPrepared(_:outsideTransaction:logger:)``: a `first` the server no longer knows is
    ///   sent again with `second`, prepared again, and if it is lost again, unnamed (at most
    ///   three sends: the connection falls back to unnamed statements on the second loss).
    func runPrepared(_ first: PreparedSQL, then second: PreparedSQL, watch: ConnectionWatch, logger: Logger) async throws(ChainedStatementError) -> [PostgresRow] {
        let (firstRoute, secondRoute) = (preparedRoute(first, watch: watch), preparedRoute(second, watch: watch))
        let firstDone = SetOnceFlag()
        do {
            return try await whileOpen(watch) {
                self.start(first, route: firstRoute, watch: watch, logger: logger).flatMap { _ in
                    firstDone.set()
                    return self.start(second, route: secondRoute, watch: watch, logger: logger)
                }
            }
        } catch {
            let failedFirst = !firstDone.isSet
            if let lost = error as? PostgresLocksError, lost.sqlState == "26000" {
                noteLostStatements(preparedNow: (failedFirst ? firstRoute : secondRoute).preparesNow, watch: watch, logger: logger)
                if failedFirst {
                    // Nothing ran: send both again (prepared again, or unnamed after a fallback).
                    return try await runPrepared(first, then: second, watch: watch, logger: logger)
                }
            }
            throw ChainedStatementError(failedFirst: failedFirst, error: error)
        }
    }

    /// How a hot statement is sent on this connection now.
    private enum PreparedRoute {
        /// As an unnamed statement (preparation off or fallen back, or no room left).
        case unnamed
        /// As the statement prepared earlier on this connection.
        case cached(PreparedQuery)
        /// Prepared now, then run (and kept, room permitting).
        case prepareNow

        /// Whether the statement is prepared by this send.
        var preparesNow: Bool {
            if case .prepareNow = self { return true }
            return false
        }
    }

    /// How `statement` is sent now: unnamed, as the statement prepared earlier, or prepared now.
    private func preparedRoute(_ statement: PreparedSQL, watch: ConnectionWatch) -> PreparedRoute {
        if watch.runsUnnamed { return .unnamed }
        if let cached = watch.preparedStatement(statement.sql) { return .cached(cached) }
        return watch.hasRoomForPreparedStatements ? .prepareNow : .unnamed
    }

    /// Sends `statement` along `route` and returns the future of all of its rows (no wait).
    private func start(_ statement: PreparedSQL, route: PreparedRoute, watch: ConnectionWatch, logger: Logger) -> EventLoopFuture<[PostgresRow]> {
        switch route {
        case .unnamed:
            return query(statement.query, logger: logger).map(\.rows)
        case .cached(let prepared):
            return prepared.execute(statement.postgresData)
        case .prepareNow:
            let (sql, binds) = (statement.sql, statement.postgresData)
            return prepare(query: sql).flatMap { prepared in
                if watch.storePreparedStatement(prepared, for: sql) {
                    return prepared.execute(binds)
                }
                // Raced past the capacity: run it once and free it. The statement's outcome is
                // its own (a COMMIT that ran is committed): a failed free is not its failure.
                return prepared.execute(binds).flatMap { rows in prepared.deallocate().map { rows }.recover { _ in rows } }
            }
        }
    }

    /// The server answered 26000 (no such prepared statement): after a `DEALLOCATE ALL` or
    /// `DISCARD ALL` sent by someone else, every statement is prepared again on its next use;
    /// lost on the very call that prepared it, or lost again, the connection's server session
    /// changes under it (a transaction pooler) and it falls back to unnamed statements.
    private func noteLostStatements(preparedNow: Bool, watch: ConnectionWatch, logger: Logger) {
        watch.forgetPreparedStatements()
        if preparedNow || watch.countLostStatement() >= 2 {
            watch.fallBackToUnnamedStatements(
                reason: "the server lost statements the library had prepared on this connection (SQLSTATE 26000): its server session changes between transactions, as behind a transaction-pooling proxy",
                logger: logger
            )
        }
    }

    /// Waits for the future `start` returns (`watch` is this connection's), throwing ``PostgresLocksError/Code/connectionLost``
    /// at once if the connection is closed or closes before the result arrives (PostgresNIO
    /// never completes a statement written to a closed connection), and mapping driver errors
    /// to ``PostgresLocksError``.
    ///
    /// The answer is returned only once the server has said the statement is done (its
    /// `ReadyForQuery`, nearly always read with the answer): PostgresNIO ends a statement at its
    /// `CommandComplete`, before a statement outside a transaction block has committed. If the
    /// connection closes in between, the statement throws `connectionLost` instead of looking
    /// done (see ``TransactionStatusTracker/isAwaitingReady``). The transaction status is then
    /// the statement's own, never the one before it.
    func whileOpen<Value: Sendable>(
        _ watch: ConnectionWatch,
        _ start: @escaping @Sendable () -> EventLoopFuture<Value>
    ) async throws -> Value {
        guard !self.isClosed else { throw PostgresLocksError.connectionLost("before sending a statement") }
        return try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Value, any Error>) in
            let pending = PendingStatement(continuation)
            guard let token = watch.register({ pending.connectionClosed() }) else {
                pending.fail(PostgresLocksError.connectionLost("before sending a statement"))
                return
            }
            start().whenComplete { result in
                pending.answer(result.mapError { error in
                    let mapped = PostgresLocksError.wrap(error)
                    if (mapped as? PostgresLocksError)?.code == .connectionLost {
                        // The session may be gone before the socket says so: the last
                        // transaction status is no longer to be trusted.
                        watch.transactionStatus.forget()
                    }
                    return mapped
                })
                // The answer's bytes have passed the status handler (it reads each chunk
                // before PostgresNIO does): whether the ReadyForQuery came with them is known.
                // (Weakly: a waiter left behind by a close must not keep the watch alive.)
                watch.transactionStatus.whenReady { [weak watch] in
                    watch?.unregister(token)
                    pending.finish()
                }
            }
        }
    }
}
