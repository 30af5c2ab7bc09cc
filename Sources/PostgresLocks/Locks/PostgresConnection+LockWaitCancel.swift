import Logging
import PostgresNIO

extension PostgresConnection {
    /// Runs one lock statement that may wait on the server, so that cancelling the calling task
    /// ends the server-side wait.
    ///
    /// PostgresNIO sends no cancel request when a task is cancelled: a task blocked in
    /// `SELECT pg_advisory_lock(…)` would stay blocked until the lock is granted, and the
    /// connection would then hold the lock. Here, cancellation runs `pg_cancel_backend(pid)`
    /// from another pooled connection; the waiting statement then fails with 57014 and this
    /// function throws `CancellationError`. If the lock was granted just before the cancel
    /// arrived, the caller's cleanup (rollback or unlock) releases it. The cancel never lands
    /// on a later statement (see ``LockWaitCancel``): if it cannot be settled, the connection
    /// is closed. Without a `canceller` (a dedicated connection), cancellation closes the
    /// connection.
    func runCancellableLockStatement(
        _ query: PostgresQuery,
        canceller: PostgresClient?,
        logger: Logger
    ) async throws -> PostgresQueryResult {
        try await runCancellable(canceller: canceller, logger: logger) { try await self.runStatement(query, logger: logger) }
    }

    /// ``runCancellableLockStatement(_:canceller:logger:)`` for one of the library's prepared
    /// lock statements; returns its rows.
    @discardableResult
    func runCancellableLockStatement(
        _ statement: PreparedSQL,
        canceller: PostgresClient?,
        logger: Logger
    ) async throws -> [PostgresRow] {
        try await runCancellable(canceller: canceller, logger: logger) { try await self.runPrepared(statement, logger: logger) }
    }

    private func runCancellable<Value: Sendable>(
        canceller: PostgresClient?,
        logger: Logger,
        _ run: () async throws -> Value
    ) async throws -> Value {
        let pid = try await backendPID(logger: logger)
        try Task.checkCancellation()
        let cancel = LockWaitCancel()
        let outcome: Result<Value, any Error>
        do {
            outcome = .success(try await withTaskCancellationHandler {
                try await run()
            } onCancel: {
                if let canceller {
                    cancel.request(pid: pid, canceller: canceller, logger: logger)
                } else {
                    // No other connection to cancel from: closing this one ends the wait for
                    // the caller (the server ends the backend, and its locks, when it next
                    // writes to the closed socket).
                    logger.debug("closing a dedicated connection to end a cancelled lock wait", metadata: ["pid": "\(pid)"])
                    Task { await self.closeDiscardingErrors() }
                }
            })
        } catch {
            outcome = .failure(error)
        }
        if await !cancel.statementEnded() {
            logger.warning("a cancel of a lock wait could not be settled; closing the connection so it cannot cancel a later statement", metadata: ["pid": "\(pid)"])
            await closeDiscardingErrors()
        }
        switch outcome {
        case .failure(let error as PostgresLocksError) where error.code == .queryCanceled && Task.isCancelled:
            throw CancellationError()
        case .failure(let error as PostgresLocksError) where error.code == .connectionLost && canceller == nil && Task.isCancelled:
            throw CancellationError()
        case .failure(let error):
            throw error
        case .success(let result):
            try Task.checkCancellation()
            return result
        }
    }
}
