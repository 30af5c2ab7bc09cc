import Logging
import PostgresNIO

extension PostgresConnection {
    /// Runs `body` in a transaction that tells the truth about how it ended.
    ///
    /// Unlike PostgresNIO's `withTransaction`, this helper:
    /// - reads the rows of every statement it runs (``Transaction/query(_:file:line:)``), so an
    ///   error raised by `SELECT some_function()` is thrown, not dropped;
    /// - throws ``PostgresLocksError/Code/transactionAborted`` when the body caught an error that
    ///   aborted the transaction, or when `COMMIT` answers `ROLLBACK`: nothing was committed;
    /// - throws ``PostgresLocksError/Code/connectionLost`` promptly when the server closes the
    ///   connection, instead of waiting forever;
    /// - maps SQLSTATEs to ``PostgresLocksError/Code``;
    /// - closes the connection when it cannot confirm the rollback, so an open transaction
    ///   never goes back into a pool.
    ///
    /// - Parameters:
    ///   - options: isolation level, access mode and transaction-local timeouts.
    ///   - logger: where statements are logged.
    ///   - body: the work; run statements with the ``Transaction`` it receives.
    /// - Returns: what `body` returned, once `COMMIT` has succeeded.
    public func withCheckedTransaction<Result>(
        options: TransactionOptions = .default,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        try await withCheckedTransaction(options: options, logger: logger, attempt: 1, body)
    }

    func withCheckedTransaction<Result>(
        options: TransactionOptions,
        logger: Logger,
        attempt: Int,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        let timeouts = try options.timeoutSettings()
        let transaction = Transaction(connection: self, logger: logger, attempt: attempt)
        try await self.runPrepared(PreparedSQL(options.beginStatement), outsideTransaction: true, logger: logger)

        let value: Result
        do {
            if timeouts.lockTimeout != nil || timeouts.statementTimeout != nil {
                try await transaction.query(
                    "SELECT set_config('lock_timeout', COALESCE(\(timeouts.lockTimeout), current_setting('lock_timeout')), true), set_config('statement_timeout', COALESCE(\(timeouts.statementTimeout), current_setting('statement_timeout')), true)"
                )
            }
            value = try await body(transaction)
        } catch {
            await self.rollbackAfterFailure(logger: logger)
            throw PostgresLocksError.wrap(error)
        }

        if let aborting = transaction.abortingError {
            await self.rollbackAfterFailure(logger: logger)
            throw PostgresLocksError(
                code: .transactionAborted,
                message: "the body caught an error that aborted the transaction, so nothing was committed: \(aborting)",
                sqlState: (aborting as? PostgresLocksError)?.sqlState,
                underlying: aborting
            )
        }

        let commit = try await self.runStatement("COMMIT", logger: logger)
        if commit.metadata.command == "ROLLBACK" {
            throw PostgresLocksError(
                code: .transactionAborted,
                message: "COMMIT answered ROLLBACK: a statement sent outside the Transaction handle failed and its error was not seen; nothing was committed"
            )
        }
        return value
    }

    /// Rolls back after the body failed. If the rollback cannot be confirmed on a live
    /// connection, the connection is closed so its open transaction cannot be reused.
    func rollbackAfterFailure(logger: Logger) async {
        guard !self.isClosed else { return }
        do {
            try await self.runStatement("ROLLBACK", logger: logger)
        } catch {
            logger.warning("ROLLBACK failed; closing the connection so its state is not reused", metadata: ["error": "\(error)"])
            await self.closeDiscardingErrors()
        }
    }

    /// Closes the connection (a pooled one is then dropped and replaced by its pool).
    func closeDiscardingErrors() async {
        guard !self.isClosed else { return }
        try? await self.close()
    }
}

extension PostgresClient {
    /// Leases a connection and runs `body` in a checked transaction on it; see
    /// ``PostgresNIO/PostgresConnection/withCheckedTransaction(options:logger:isolation:_:)``.
    public func withCheckedTransaction<Result>(
        options: TransactionOptions = .default,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        try await withCheckedTransaction(options: options, logger: logger, attempt: 1, body)
    }

    func withCheckedTransaction<Result>(
        options: TransactionOptions,
        logger: Logger,
        attempt: Int,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        do {
            return try await self.withConnection { connection in
                try await connection.withCheckedTransaction(options: options, logger: logger, attempt: attempt, body)
            }
        } catch {
            throw PostgresLocksError.wrap(error)
        }
    }
}
