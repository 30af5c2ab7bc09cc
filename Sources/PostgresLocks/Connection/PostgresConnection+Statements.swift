import NIOCore
import PostgresNIO
import Synchronization

extension PostgresConnection {
    /// Runs one statement, reads all of its rows, and returns them with the command tag.
    ///
    /// This and ``runPrepared(_:outsideTransaction:logger:)`` are how `PostgresLocks` talks to
    /// the server (the one exception is the pooler check's `SHOW VERSION` in
    /// `identifyPooler`, a simple query a pooler answers itself). Both close three driver traps:
    /// - every row is read, so an error raised while producing rows (a 40P01 from
    ///   `SELECT pg_advisory_xact_lock(…)`) is thrown instead of dropped;
    /// - a closed connection makes the call throw ``PostgresLocksError/Code/connectionLost``
    ///   at once instead of waiting forever;
    /// - driver errors are mapped to ``PostgresLocksError``.
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
        if watch.runsUnnamed {
            return try await runStatement(statement.query, watch: watch, logger: logger).rows
        }
        let sql = statement.sql
        var preparedNow = false
        do {
            let cached = watch.preparedStatement(sql)
            guard cached != nil || watch.hasRoomForPreparedStatements else {
                return try await runStatement(statement.query, watch: watch, logger: logger).rows
            }
            let binds = statement.postgresData
            if let prepared = cached {
                return try await whileOpen(watch) { prepared.execute(binds) }
            }
            preparedNow = true
            return try await whileOpen(watch) {
                self.prepare(query: sql).flatMap { prepared in
                    if watch.storePreparedStatement(prepared, for: sql) {
                        return prepared.execute(binds)
                    }
                    // Raced past the capacity: run it once and free it.
                    return prepared.execute(binds).flatMap { rows in prepared.deallocate().map { rows } }
                }
            }
        } catch let error as PostgresLocksError where error.sqlState == "26000" {
            watch.forgetPreparedStatements()
            // Once (a `DEALLOCATE ALL` or `DISCARD ALL` sent by someone else) the statements are
            // prepared again. Lost on the very call that prepared it, or lost again: the
            // connection's server session changes under it (a transaction pooler).
            if preparedNow || watch.countLostStatement() >= 2 {
                watch.fallBackToUnnamedStatements(
                    reason: "the server lost statements the library had prepared on this connection (SQLSTATE 26000): its server session changes between transactions, as behind a transaction-pooling proxy",
                    logger: logger
                )
            }
            guard outsideTransaction else { throw error }
            return try await runPrepared(statement, watch: watch, outsideTransaction: false, logger: logger)
        }
    }

    /// Waits for the future `start` returns (`watch` is this connection's), throwing ``PostgresLocksError/Code/connectionLost``
    /// at once if the connection is closed or closes before the result arrives (PostgresNIO
    /// never completes a statement written to a closed connection), and mapping driver errors
    /// to ``PostgresLocksError``.
    func whileOpen<Value: Sendable>(
        _ watch: ConnectionWatch,
        _ start: @escaping @Sendable () -> EventLoopFuture<Value>
    ) async throws -> Value {
        guard !self.isClosed else { throw PostgresLocksError.connectionLost("before sending a statement") }
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
            let once = ResumeOnce(continuation)
            guard let token = watch.register({
                once.resume(with: .failure(PostgresLocksError.connectionLost("while a statement was running")))
            }) else {
                once.resume(with: .failure(PostgresLocksError.connectionLost("before sending a statement")))
                return
            }
            start().whenComplete { result in
                watch.unregister(token)
                once.resume(with: result.mapError { error in
                    let mapped = PostgresLocksError.wrap(error)
                    if (mapped as? PostgresLocksError)?.code == .connectionLost {
                        // The session may be gone before the socket says so: the last
                        // transaction status is no longer to be trusted.
                        watch.transactionStatus.forget()
                    }
                    return mapped
                })
            }
        }
    }
}
