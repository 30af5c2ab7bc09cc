import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO
import Synchronization

/// Counts the faults the demo survives; shared by every scenario, read before and after each.
final class FaultTally: Sendable {
    private let counts = Mutex(FaultCounts())

    func connectionLost() { counts.withLock { $0.connectionLosses += 1 } }
    func rerun() { counts.withLock { $0.reruns += 1 } }
    func lockLost() { counts.withLock { $0.locksLost += 1 } }

    var snapshot: FaultCounts { counts.withLock { $0 } }
}

extension DemoContext {
    /// The retry policy of the demo's transactional work, all of which is safe to re-run once
    /// nothing was committed (each scenario's work lives in the database, in the transaction):
    /// ``RetryPolicy/resolvingCommitOutcome`` with room for a server restart: up to 60
    /// attempts, backoff from 10 ms to 500 ms (about 25 s in all), and a `COMMIT` lost in
    /// flight is settled with `pg_xact_status` for up to 30 s.
    static let retryPolicy = RetryPolicy(
        maximumAttempts: 60,
        initialBackoff: .milliseconds(10),
        maximumBackoff: .milliseconds(500),
        retryOnConnectionLoss: true,
        resolveCommitOutcome: true,
        commitOutcomeWait: .seconds(30)
    )

    /// How long an idempotent statement (setup, checks) is retried while connections are lost.
    static let idempotentRetryLimit: Duration = .seconds(60)

    /// A checked transaction on the pool, re-run after a lost connection when nothing was
    /// committed, with a `COMMIT` lost in flight settled first (``retryPolicy``); re-runs are counted.
    func transaction<Result>(
        options: TransactionOptions = .default,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> Result
    ) async throws -> sending Result {
        let faults = self.faults
        return try await client.withRetryingTransaction(retry: Self.retryPolicy, options: options, logger: logger) { tx in
            if tx.attempt > 1 { faults.rerun() }
            return try await body(tx)
        }
    }

    /// Runs `operation`, which must be safe to run again whether or not an earlier run took
    /// effect (setup DDL such as `DROP … IF EXISTS` then `CREATE`, reads, checks), again after a
    /// lost connection, for at most ``idempotentRetryLimit``; each loss is counted.
    func idempotent<Value>(
        isolation: isolated (any Actor)? = #isolation,
        _ operation: () async throws -> sending Value
    ) async throws -> sending Value {
        let deadline = ContinuousClock.now + Self.idempotentRetryLimit
        var delay = Duration.milliseconds(10)
        while true {
            do {
                return try await operation()
            } catch where Self.isConnectionFault(error) && ContinuousClock.now < deadline {
                faults.connectionLost()
                logger.debug("connection lost; running an idempotent demo step again", metadata: ["error": .error(error)])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .milliseconds(500))
            }
        }
    }

    /// An idempotent checked transaction (setup or check); see ``idempotent(isolation:_:)``.
    func idempotentTransaction<Value>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Value
    ) async throws -> sending Value {
        try await idempotent {
            try await client.withCheckedTransaction(logger: logger, body)
        }
    }

    /// One idempotent statement (setup or check) on the pool; see ``idempotent(isolation:_:)``.
    @discardableResult
    func idempotentQuery(_ query: PostgresQuery) async throws -> PostgresQueryResult {
        try await idempotent {
            try await client.checkedQuery(query, logger: logger)
        }
    }

    /// Whether `error` says a connection was lost or could not be had for a while (a backend
    /// terminated, a server restarting), or that a `COMMIT` lost in flight could not be settled:
    /// retrying later can help.
    static func isConnectionFault(_ error: any Error) -> Bool {
        guard let error = PostgresLocksError.wrap(error) as? PostgresLocksError else { return false }
        return error.isConnectionUnavailable || error.code == .commitOutcomeUnknown
    }

    /// When the server last started (`pg_postmaster_start_time()`), to tell whether a measured
    /// interval spanned a server restart.
    func serverStartTime() async throws -> String {
        try await idempotentQuery("SELECT pg_postmaster_start_time()::text").rows[0].decode(String.self)
    }
}
