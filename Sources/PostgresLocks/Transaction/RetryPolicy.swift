/// When and how often a whole transaction is re-run after a transient failure.
///
/// Deadlocks (40P01) and serialization failures (40001) are always retryable: PostgreSQL
/// aborted the transaction, and running it again from the start is the documented remedy.
/// Lock-not-available (55P03, from `NOWAIT` or `lock_timeout`) is retried only when
/// ``retryOnLockNotAvailable`` is set. A lost connection is retried only when
/// ``retryOnConnectionLoss`` is set, and only when nothing was committed: a checked transaction
/// reports a connection lost **before** `COMMIT` was sent (the server rolled the transaction
/// back) as ``PostgresLocksError/Code/connectionLost``, and one lost **while** `COMMIT` was in
/// flight as ``PostgresLocksError/Code/commitOutcomeUnknown``, which is never retried.
/// ``resolveCommitOutcome`` settles that second case where it can (see <doc:CheckedAndRetryingTransactions>).
/// Anything else is never retried.
///
/// Delays grow exponentially from ``initialBackoff``, are capped at ``maximumBackoff``, and are
/// jittered ("equal jitter": half fixed, half random) so that colliding transactions spread out.
public struct RetryPolicy: Sendable, Hashable {
    /// How many times the body may run in total (the first run included). At least 1.
    public var maximumAttempts: Int
    /// The delay scale before the first retry.
    public var initialBackoff: Duration
    /// The largest delay between attempts.
    public var maximumBackoff: Duration
    /// Also retry on 55P03 (`NOWAIT` failed, `lock_timeout` expired).
    public var retryOnLockNotAvailable: Bool
    /// Also re-run when the connection was lost and the transaction certainly did not commit:
    /// lost before `COMMIT` was sent (the server rolls back an open transaction whose session
    /// ends), or lost while `COMMIT` was in flight and found aborted by ``resolveCommitOutcome``.
    /// The re-run leases a new connection from the client; a transaction on one
    /// `PostgresConnection` is not re-run (its connection is gone). Costs nothing until a
    /// connection is lost.
    public var retryOnConnectionLoss: Bool
    /// Settle a `COMMIT` whose connection was lost in flight instead of reporting it as unknown.
    ///
    /// Before `COMMIT`, one more statement reads the transaction id
    /// (`pg_current_xact_id_if_assigned()`). If the connection is lost while `COMMIT` is in
    /// flight, a new connection from the client asks `pg_xact_status(id)` (polling for a few
    /// seconds while it is `in progress`): `committed` returns the body's result, `aborted` (or no
    /// id: the transaction wrote nothing) is a loss before commit, re-run if
    /// ``retryOnConnectionLoss`` is set; anything else throws
    /// ``PostgresLocksError/Code/commitOutcomeUnknown`` with ``PostgresLocksError/transactionID``.
    /// Needs PostgreSQL 13 or later. Off by default: it costs one round trip per transaction.
    public var resolveCommitOutcome: Bool
    /// How long ``resolveCommitOutcome`` keeps asking while the server cannot be reached (a
    /// restart, a failover) or the transaction is still in progress, before it gives up with
    /// ``PostgresLocksError/Code/commitOutcomeUnknown``.
    public var commitOutcomeWait: Duration

    /// Creates a policy.
    public init(
        maximumAttempts: Int = 5,
        initialBackoff: Duration = .milliseconds(5),
        maximumBackoff: Duration = .seconds(1),
        retryOnLockNotAvailable: Bool = false,
        retryOnConnectionLoss: Bool = false,
        resolveCommitOutcome: Bool = false,
        commitOutcomeWait: Duration = .seconds(5)
    ) {
        self.maximumAttempts = maximumAttempts
        self.initialBackoff = initialBackoff
        self.maximumBackoff = maximumBackoff
        self.retryOnLockNotAvailable = retryOnLockNotAvailable
        self.retryOnConnectionLoss = retryOnConnectionLoss
        self.resolveCommitOutcome = resolveCommitOutcome
        self.commitOutcomeWait = commitOutcomeWait
    }

    /// Five attempts, 5 ms growing to at most 1 s.
    public static let `default` = RetryPolicy()

    /// ``default`` that also survives lost connections: re-runs a transaction the server rolled
    /// back (``retryOnConnectionLoss``) and settles a `COMMIT` lost in flight
    /// (``resolveCommitOutcome``, one more statement per transaction). For work that is safe to
    /// re-run once nothing was committed: gapless counters, exactly-once ingestion, fenced writes.
    public static let resolvingCommitOutcome = RetryPolicy(retryOnConnectionLoss: true, resolveCommitOutcome: true)

    /// Checks the policy's values.
    public func validate() throws(PostgresLocksError) {
        guard maximumAttempts >= 1 else {
            throw .invalidArgument("maximumAttempts must be at least 1; found \(maximumAttempts)")
        }
        guard maximumAttempts <= 1_000 else {
            throw .invalidArgument("maximumAttempts must be at most 1000; found \(maximumAttempts)")
        }
        guard initialBackoff >= .zero, maximumBackoff >= .zero else {
            throw .invalidArgument("backoff durations must not be negative")
        }
        guard maximumBackoff <= .seconds(3600) else {
            throw .invalidArgument("maximumBackoff must be at most one hour; found \(maximumBackoff)")
        }
        guard commitOutcomeWait >= .zero, commitOutcomeWait <= .seconds(3600) else {
            throw .invalidArgument("commitOutcomeWait must be between zero and one hour; found \(commitOutcomeWait)")
        }
    }

    /// Whether `error`, thrown by a checked transaction's attempt number `attempt` (1-based),
    /// should lead to another attempt. (`connectionLost` from anything else, such as an
    /// autocommit statement, does not say whether the statement ran.)
    public func shouldRetry(_ error: any Error, afterAttempt attempt: Int) -> Bool {
        guard attempt < maximumAttempts, let error = error as? PostgresLocksError else { return false }
        switch error.code {
        case .deadlock, .serializationFailure: return true
        case .lockNotAvailable: return retryOnLockNotAvailable
        // From a checked transaction, connectionLost means nothing was committed (a loss while
        // COMMIT was in flight is commitOutcomeUnknown, never retried).
        case .connectionLost: return retryOnConnectionLoss
        default: return false
        }
    }

    /// The delay before attempt `attempt + 1`: `d = min(maximumBackoff, initialBackoff × 2^(attempt-1))`,
    /// then a value drawn uniformly from `d/2 ... d`.
    public func backoff<G: RandomNumberGenerator>(afterAttempt attempt: Int, using generator: inout G) -> Duration {
        Backoff(initial: initialBackoff, maximum: maximumBackoff).delay(afterAttempt: attempt, using: &generator)
    }
}
