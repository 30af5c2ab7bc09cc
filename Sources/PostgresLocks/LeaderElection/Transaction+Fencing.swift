extension Transaction {
    /// Checks, inside this transaction, that `token` is still the election's current term, and
    /// keeps it current until the transaction ends; run it before the writes it guards.
    ///
    /// ```swift
    /// try await client.withRetryingTransaction(retry: .resolvingCommitOutcome, logger: logger) { tx in
    ///     try await tx.requireCurrentTerm(token)
    ///     try await tx.query("INSERT INTO runs (job, started_by_term) VALUES (\(job), \(token.term))")
    /// }
    /// ```
    ///
    /// A fenced write is safe to re-run once nothing was committed: each run checks the term
    /// again. ``RetryPolicy/resolvingCommitOutcome`` re-runs it after a lost connection only when
    /// the server rolled it back, and settles a `COMMIT` lost in flight, so the write is never
    /// applied twice.
    ///
    /// The check reads the term row `FOR SHARE`. A new leader's term bump updates that row, so
    /// it waits until this transaction commits or rolls back: the guarded writes are ordered
    /// entirely before the next term starts, never interleaved with it. Conversely, if a new
    /// term was started (even one not yet committed, which this check waits for), the stored
    /// term is larger and the check throws. Keep fenced transactions short: a new leader's
    /// takeover waits for them.
    ///
    /// - Throws: ``PostgresLocksError/Code/fenced`` when the stored term differs from
    ///   `token.term` (a newer leader exists) or the election has no row; the transaction is
    ///   then still usable, but the caller should stop acting as leader. Other
    ///   ``PostgresLocksError``s for database failures (such as 42P01 if the terms table does
    ///   not exist).
    public func requireCurrentTerm(_ token: FencingToken) async throws {
        let rows = try await query(LeaderTermsSQL.currentTermForShare(token.termsTable, election: token.election)).rows
        guard let row = rows.first else {
            throw PostgresLocksError(
                code: .fenced,
                message: "election \"\(token.election)\" has no term in \(token.termsTable); token \(token) is not current"
            )
        }
        let stored = try row.decode(Int64.self)
        guard stored == token.term else {
            throw PostgresLocksError(
                code: .fenced,
                message: "election \"\(token.election)\" is at term \(stored); token \(token) is from term \(token.term)",
                hint: stored > token.term ? "another instance has become leader since this token was issued; stop acting as leader" : nil
            )
        }
    }
}
