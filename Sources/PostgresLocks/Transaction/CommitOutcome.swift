import Logging
import PostgresNIO

/// How a transaction ended, as PostgreSQL's `pg_xact_status()` reports it.
public enum TransactionStatus: String, Sendable, Hashable, CustomStringConvertible {
    /// The transaction committed.
    case committed
    /// The transaction rolled back, or its server process ended before it committed.
    case aborted
    /// The transaction is still running (its server process has not finished `COMMIT`, or has
    /// not noticed that its client is gone).
    case inProgress = "in progress"

    public var description: String { rawValue }
}

extension TransactionRunner {
    /// How the transaction `transactionID` ended, asked on a connection of this runner: for
    /// example the ``PostgresLocksError/transactionID`` of a
    /// ``PostgresLocksError/Code/commitOutcomeUnknown`` error.
    ///
    /// - Returns: the status, or `nil` when the server no longer knows (the id is older than
    ///   the commit log it keeps). Needs PostgreSQL 13 or later.
    public func transactionStatus(_ transactionID: UInt64, logger: Logger) async throws -> TransactionStatus? {
        try await transactionRoute.withConnection(logger: logger) { connection, _ in
            let rows = try await connection.runStatement("SELECT pg_xact_status(\(String(transactionID))::text::xid8)", logger: logger).rows
            guard let text = try rows.first?.decode(String?.self) else { return nil }
            guard let status = TransactionStatus(rawValue: text) else {
                throw PostgresLocksError(code: .client, message: "pg_xact_status returned an unexpected value \(text.debugDescription)")
            }
            return status
        }
    }
}

/// A `COMMIT` lost in flight on a transaction whose id was read
/// (``RetryPolicy/resolveCommitOutcome``): the connection is gone, so whoever can get another
/// connection settles it with `pg_xact_status`, returning `value` if it committed.
struct UnsettledCommit<Value>: Error, @unchecked Sendable {
    /// ``PostgresLocksError/Code/commitOutcomeUnknown`` with the transaction id: what is thrown
    /// if the outcome cannot be settled.
    var error: PostgresLocksError
    /// What the body returned: the result if the transaction committed.
    var value: Value

    var transactionID: UInt64 { error.transactionID ?? 0 }
}

/// The statements and errors of commit-outcome resolution.
enum CommitOutcomeSQL {
    /// The transaction's id, or NULL when it has none (it wrote nothing), as text.
    static let currentTransactionID = PreparedSQL("SELECT pg_current_xact_id_if_assigned()::text")

    /// The error for a connection lost while `COMMIT` was in flight.
    static func lostCommit<Value>(
        _ error: any Error, readsTransactionID: Bool, transactionID: UInt64?, value: Value
    ) -> any Error {
        if readsTransactionID && transactionID == nil {
            // No transaction id: the transaction wrote nothing, so nothing can have committed.
            return PostgresLocksError(
                code: .connectionLost,
                message: "the connection to the server was lost while COMMIT was in flight, but the transaction had written nothing (no transaction id): nothing was committed",
                underlying: error
            )
        }
        var unknown = PostgresLocksError(
            code: .commitOutcomeUnknown,
            message: "the connection to the server was lost while COMMIT was in flight: the transaction may or may not have committed",
            hint: transactionID.map { "ask the server later: SELECT pg_xact_status('\($0)'::xid8), or PostgresClient.transactionStatus" }
                ?? "RetryPolicy.resolveCommitOutcome reads the transaction id before COMMIT and settles this case",
            underlying: error
        )
        unknown.transactionID = transactionID
        guard readsTransactionID else { return unknown }
        return UnsettledCommit(error: unknown, value: value)
    }
}

extension PostgresClient {
    /// Settles `unsettled` by asking `pg_xact_status` on connections from this client, for at
    /// most `wait` (while the server cannot be reached or the transaction is still in progress).
    ///
    /// - Returns: the body's result if the transaction committed.
    /// - Throws: ``PostgresLocksError/Code/connectionLost`` if it aborted (nothing was
    ///   committed: safe to re-run); ``PostgresLocksError/Code/commitOutcomeUnknown`` with the
    ///   transaction id otherwise.
    func settle<Value: Sendable>(_ unsettled: UnsettledCommit<Value>, within wait: Duration, logger: Logger) async throws -> Value {
        let transactionID = unsettled.transactionID
        let clock = ContinuousClock()
        let deadline = clock.now + wait
        var delay = Duration.milliseconds(5)
        var lastAnswer = "no answer"
        while true {
            let answer: StatusAnswer
            do {
                answer = try await statusBefore(deadline, transactionID: transactionID, logger: logger)
            } catch let error as PostgresLocksError where error.sqlState != nil && error.code != .connectionLost {
                // The server answered with an error (such as an id "in the future"): asking again will not help.
                throw unknown(unsettled, "could not ask the server: \(error)")
            } catch {
                // No connection (the server restarting, unreachable): ask again until the deadline.
                answer = .unreachable("could not ask the server: \(error)")
            }
            switch answer {
            case .answered(.committed):
                logger.info("a COMMIT lost in flight had committed", metadata: ["transaction_id": "\(transactionID)"])
                return unsettled.value
            case .answered(.aborted):
                logger.info("a COMMIT lost in flight had not committed", metadata: ["transaction_id": "\(transactionID)"])
                throw PostgresLocksError(
                    code: .connectionLost,
                    message: "the connection to the server was lost while COMMIT was in flight; the server reports transaction \(transactionID) aborted: nothing was committed",
                    underlying: unsettled.error
                )
            case .answered(nil):
                throw unknown(unsettled, "the server no longer knows transaction \(transactionID)")
            case .timedOut:
                throw unknown(unsettled, "not settled within \(wait): \(lastAnswer)")
            case .answered(.inProgress):
                lastAnswer = "transaction \(transactionID) is still in progress"
            case .unreachable(let reason):
                lastAnswer = reason
            }
            guard !Task.isCancelled else { throw unknown(unsettled, "cancelled while asking the server (\(lastAnswer))") }
            guard clock.now + delay < deadline else { throw unknown(unsettled, "not settled within \(wait): \(lastAnswer)") }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .milliseconds(200))
        }
    }

    private enum StatusAnswer: Sendable {
        case answered(TransactionStatus?)
        case unreachable(String)
        case timedOut
    }

    /// One `pg_xact_status` question, given up (the lease or the question cancelled) at `deadline`.
    private func statusBefore(_ deadline: ContinuousClock.Instant, transactionID: UInt64, logger: Logger) async throws -> StatusAnswer {
        try await withThrowingTaskGroup(of: StatusAnswer.self) { group in
            group.addTask { .answered(try await self.transactionStatus(transactionID, logger: logger)) }
            group.addTask {
                try await Task.sleep(until: deadline, clock: .continuous)
                return .timedOut
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { return .timedOut }
            return first
        }
    }

    private func unknown<Value>(_ unsettled: UnsettledCommit<Value>, _ reason: String) -> PostgresLocksError {
        var error = unsettled.error
        error.message += "; \(reason)"
        return error
    }
}
