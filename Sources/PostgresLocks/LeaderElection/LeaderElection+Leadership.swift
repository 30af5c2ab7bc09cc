extension LeaderElection {
    /// Waits until this instance leads, then runs `body` with the term's token, cancelling it
    /// as soon as leadership is lost.
    ///
    /// ```swift
    /// try await election.withLeadership { token in
    ///     for await _ in ticks {   // cancelled when leadership ends
    ///         try await client.withCheckedTransaction(logger: logger) { tx in
    ///             try await tx.requireCurrentTerm(token)
    ///             try await runDueJobs(tx)
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// Cancellation is cooperative: `body` should reach a suspension point or check
    /// `Task.isCancelled` often, and fence its writes with the token anyway (a deposed leader
    /// may not know it has been deposed yet).
    ///
    /// - Returns: what `body` returned, if it finished while still leader.
    /// - Throws: ``PostgresLocksError/Code/lockLost`` if leadership ended while `body` ran
    ///   (`body` was cancelled) or the election stopped before this instance led;
    ///   `CancellationError` if the calling task was cancelled while waiting; what `body` threw.
    public func withLeadership<Result: Sendable>(
        _ body: @escaping @Sendable (FencingToken) async throws -> Result
    ) async throws -> Result {
        var token: FencingToken?
        for await change in leadershipChanges() {
            if let leading = change.token {
                token = leading
                break
            }
        }
        try Task.checkCancellation()
        guard let token else {
            throw PostgresLocksError(code: .lockLost, message: "the election \"\(configuration.name)\" stopped before this instance became leader")
        }
        return try await withThrowingTaskGroup(of: Result?.self) { group in
            group.addTask { try await body(token) }
            group.addTask {
                // A fresh subscription starts with the current state, so a change that
                // happened since `token` arrived is seen at once.
                for await change in self.leadershipChanges() where change != .leader(token) {
                    throw PostgresLocksError(code: .lockLost, message: "leadership of term \(token.term) ended (\(change)); the work was cancelled")
                }
                if Task.isCancelled { return nil }
                throw PostgresLocksError(code: .lockLost, message: "the election \"\(self.configuration.name)\" stopped; the work of term \(token.term) was cancelled")
            }
            while let result = try await group.next() {
                if let value = result {
                    group.cancelAll()
                    return value
                }
            }
            throw CancellationError()
        }
    }
}
