import PostgresNIO

extension Transaction {
    /// Sets `lock_timeout` for the rest of this transaction only (`set_config(…, true)`, like
    /// `SET LOCAL`): it ends with the transaction and never leaks into a pooled connection.
    /// A wait for a row or table lock longer than `timeout` then fails with
    /// ``PostgresLocksError/Code/lockNotAvailable`` (55P03), which aborts the transaction (use
    /// ``withSavepoint(isolation:_:)`` around the statement to go on after it).
    ///
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` for a timeout below 1 ms or over
    ///   about 24 days (PostgreSQL's limit).
    public func setLockTimeout(_ timeout: Duration) async throws {
        let value = try TransactionOptions.milliseconds(timeout, name: "lock_timeout")
        try await query("SELECT set_config('lock_timeout', \(value), true)")
    }
}
