/// Whether an advisory lock excludes everyone or only exclusive holders.
public enum LockMode: String, Sendable, Hashable, Codable, CaseIterable {
    /// One holder at a time (`pg_advisory_lock`).
    case exclusive
    /// Many shared holders at once, excluding exclusive holders (`pg_advisory_lock_shared`).
    case shared
}

/// How long to wait for an advisory lock.
///
/// Every wait happens on the server, in PostgreSQL's lock queue (first come, first served, and
/// visible to the deadlock detector); the client never polls.
public enum LockWait: Sendable, Hashable {
    /// Wait until the lock is granted (or the task is cancelled).
    case forever
    /// Do not wait: take the lock only if it is free now (`pg_try_advisory_lock`).
    case immediately
    /// Wait at most this long, under a transaction-local `lock_timeout`.
    case timeout(Duration)

    /// Checks the timeout and renders it as PostgreSQL milliseconds.
    func lockTimeoutSetting() throws(PostgresLocksError) -> String? {
        guard case .timeout(let duration) = self else { return nil }
        return try TransactionOptions.milliseconds(duration, name: "lock wait timeout")
    }
}

/// How long an advisory lock lasts.
public enum LockScope: String, Sendable, Hashable, Codable {
    /// Until the transaction ends (`pg_advisory_xact_lock`): released by COMMIT or ROLLBACK.
    case transaction
    /// Until unlocked or the session ends (`pg_advisory_lock`): survives transactions.
    case session
}
