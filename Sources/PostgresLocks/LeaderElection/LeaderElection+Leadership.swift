import ServiceLifecycle

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
        let token = await nextLeaderToken()
        try Task.checkCancellation()
        guard let token else {
            throw PostgresLocksError(code: .lockLost, message: "the election \"\(configuration.name)\" stopped before this instance became leader")
        }
        return try await withLeadership(of: token, body)
    }

    /// Runs `body` with `token`, cancelling it as soon as the term of `token` stops leading.
    func withLeadership<Result: Sendable>(
        of token: FencingToken,
        _ body: @escaping @Sendable (FencingToken) async throws -> Result
    ) async throws -> Result {
        try await withThrowingTaskGroup(of: Result?.self) { group in
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

    /// Runs `work` whenever this instance leads, for as long as the election runs: it starts
    /// with each new term's token, is cancelled as soon as that term's leadership ends, and
    /// starts again when this instance leads again. A change of leader never throws.
    ///
    /// ```swift
    /// struct Scheduler: Service {
    ///     let election: LeaderElection
    ///     func run() async throws {
    ///         try await election.whileLeading { token in
    ///             for await _ in ticks {   // cancelled when this term ends
    ///                 try await client.withCheckedTransaction(logger: logger) { tx in
    ///                     try await tx.requireCurrentTerm(token)
    ///                     try await enqueueDueJobs(tx)
    ///                 }
    ///             }
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// Put it in a `Service` of the same `ServiceGroup` as the election: when the leader's
    /// session dies, the election reconnects and campaigns again, and this call waits for the
    /// next term instead of failing the group.
    ///
    /// Returns when the election stops, the calling service is shut down gracefully, or the
    /// calling task is cancelled.
    ///
    /// - Throws: only what `work` throws while its term still leads. Errors that mean the term
    ///   is over (``PostgresLocksError/Code/lockLost``, ``PostgresLocksError/Code/fenced``,
    ///   cancellation) end that term's work quietly; the next term starts it again.
    public func whileLeading(_ work: @escaping @Sendable (FencingToken) async throws -> Void) async throws {
        // Graceful shutdown of the calling service ends the work too: a ServiceGroup stops its
        // services in order, and would otherwise wait here for the election to stop first.
        do {
            try await cancelWhenGracefulShutdown {
                try await self.leadRepeatedly(work)
            }
        } catch is CancellationError {
            return
        }
    }

    /// The token of the current or next term this instance leads; nil when the election ends
    /// first or the task is cancelled.
    private func nextLeaderToken() async -> FencingToken? {
        for await change in leadershipChanges() {
            if let leading = change.token { return leading }
        }
        return nil
    }

    private func leadRepeatedly(_ work: @escaping @Sendable (FencingToken) async throws -> Void) async throws {
        while !Task.isCancelled {
            // Nil: the election finished (its stream ended) or this task was cancelled.
            guard let token = await nextLeaderToken(), !Task.isCancelled else { return }
            do {
                try await withLeadership(of: token, work)
            } catch {
                guard Self.endsTerm(error) || currentToken != token || Task.isCancelled else { throw error }
                logger.debug("leader work ended with its term", metadata: ["election": "\(configuration.name)", "term": "\(token.term)", "error": .error(error)])
            }
            // The work may have returned while still leading: wait for this term to end.
            for await change in leadershipChanges() where change != .leader(token) { break }
        }
    }

    /// Whether `error` says the term's leadership is over (not a failure of the work itself).
    static func endsTerm(_ error: any Error) -> Bool {
        if error is CancellationError { return true }
        guard let error = error as? PostgresLocksError else { return false }
        return error.code == .lockLost || error.code == .fenced
    }
}
