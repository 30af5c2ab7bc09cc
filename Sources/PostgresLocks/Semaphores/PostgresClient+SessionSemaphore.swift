import Logging
import PostgresNIO

extension PostgresClient {
    /// Takes a permit of the semaphore `name` for a **session** on a leased connection, runs
    /// `body` outside any transaction (so the permit can span long work), and releases it: at
    /// most `permits` holders at once across every process using the name.
    ///
    /// The guarantees are those of ``withSessionAdvisoryLock(_:mode:wait:heartbeat:logger:_:)``:
    /// the permit is released before the connection goes back to the pool (or the connection is
    /// closed); if the connection dies while `body` runs (seen by a heartbeat every `heartbeat`
    /// that asks whether this session still holds its permit), `body` is cancelled and the call
    /// throws ``PostgresLocksError/Code/lockLost``; cancelling while waiting ends the server-side
    /// wait and leaves no permit held; behind a transaction-pooling proxy the call throws
    /// ``PostgresLocksError/Code/transactionPooling`` before taking anything. See
    /// ``AdvisorySemaphore`` for how permits are taken and waited for.
    ///
    /// ```swift
    /// // At most 2 exports talk to the partner's API at once, however long each one runs.
    /// try await client.withSessionSemaphore("partner-api", permits: 2, logger: logger) {
    ///     try await export(batch)
    /// }
    /// ```
    ///
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` for an empty name, `permits` out of
    ///   range or a bad heartbeat or timeout (nothing is sent); ``PostgresLocksError/Code/lockTimeout``
    ///   when no permit was granted (`body` did not run); `lockLost`; whatever `body` throws.
    @discardableResult
    public func withSessionSemaphore<Result: Sendable>(
        _ name: String,
        permits: Int,
        wait: LockWait = .forever,
        heartbeat: Duration? = .seconds(5),
        logger: Logger,
        _ body: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        let semaphore = try AdvisorySemaphore(name, permits: permits)
        _ = try wait.lockTimeoutSetting()
        return try await withSessionHold(of: "a session semaphore", heartbeat: heartbeat, logger: logger, body) { connection in
            let index = try await connection.takeSessionPermit(semaphore, wait: wait, canceller: self, logger: logger)
            return (semaphore.permitKey(index), .exclusive)
        }
    }
}

extension PostgresConnection {
    /// Takes a permit of `semaphore` for this session: first any free one, in one statement;
    /// if none, waits on the server for the permit with the fewest waiters.
    ///
    /// - Returns: the index of the permit taken.
    /// - Throws: ``PostgresLocksError/Code/lockTimeout`` when none was granted; whatever it
    ///   throws, no permit is left held.
    func takeSessionPermit(_ semaphore: AdvisorySemaphore, wait: LockWait, canceller: PostgresClient, logger: Logger) async throws -> Int {
        try await semaphore.takePermit(scope: .session, wait: wait, logger: logger) { statement in
            try await runPrepared(statement, outsideTransaction: true, logger: logger)
        } waitFor: { key in
            try await takeSessionLock(key, mode: .exclusive, wait: wait, canceller: canceller, logger: logger)
        }
    }
}
