import Logging
import PostgresNIO

extension PostgresClient {
    /// Leases a connection and runs `body` in a checked transaction on it; see
    /// ``PostgresNIO/PostgresConnection/withCheckedTransaction(options:logger:isolation:_:)``.
    @discardableResult
    public func withCheckedTransaction<Result>(
        options: TransactionOptions = .default,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        try await withCheckedTransaction(options: options, logger: logger, attempt: 1, body)
    }

    /// The checked transaction on a leased connection; `readsTransactionID` as on
    /// `PostgresConnection` (a ``UnsettledCommit`` is thrown for the caller to settle).
    func withCheckedTransaction<Result>(
        options: TransactionOptions,
        logger: Logger,
        attempt: Int,
        readsTransactionID: Bool = false,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        try await self.withLibraryConnection(logger: logger) { connection in
            try await connection.withCheckedTransaction(
                options: options, logger: logger, attempt: attempt, readsTransactionID: readsTransactionID, canceller: self, body
            )
        }
    }
}
