import Logging
import PostgresNIO

extension LeaderElection {
    /// The election's loop: connect, follow, lead, and after a failure reconnect with backoff,
    /// until a stop is requested (graceful shutdown or cancellation of ``run()``).
    func campaign() async throws {
        let configuration = self.configuration
        let logger = self.logger
        var machine = LeaderCampaignStateMachine(
            backoff: Backoff(initial: configuration.reconnectDelay, maximum: configuration.maximumReconnectDelay),
            stepBack: configuration.lockPollInterval * 2
        )
        var random = SystemRandomNumberGenerator()
        var fatal: (any Error)?
        while !stop.isFired {
            var connection: PostgresConnection?
            var queued = false
            var led = false
            var end = LeaderCampaignStateMachine.SessionEnd.finished
            do {
                // A leader's lock is a session lock: before every connect (the URL may lead
                // somewhere else after a failover), refuse behind transaction pooling, and
                // campaign only once the probe could run.
                switch machine.probed(await PostgresConnection.probePooling(configuration: connectionConfiguration, logger: logger)) {
                case .refuse:
                    throw PostgresLocksError.transactionPooling(feature: "leader election")
                case .connectToDiagnose:
                    let opened = try await connect()
                    await opened.closeDiscardingErrors()
                    throw PostgresLocksError(code: .connectionLost, message: "the pooling probe could not run; probing again before campaigning")
                case .campaign:
                    let opened = try await connect()
                    connection = opened
                    try await runSession(on: opened, queued: &queued, led: &led)
                }
            } catch {
                end = .failed(error, permanent: Self.isPermanent(error))
            }
            // Stop acting as leader before the session (and with it the lock) is gone.
            publish(.follower)
            state.withLock { state in
                state.connection = nil
                state.backendPID = nil
                state.waitingForLock = false
            }
            if let connection { await connection.closeDiscardingErrors() }
            switch machine.roundEnded(end, healthy: queued, led: led, stopRequested: stop.isFired, using: &random) {
            case .stop(let failure):
                if let failure {
                    logger.error("leader election stopped by an error that retrying cannot fix", metadata: ["election": "\(configuration.name)", "error": .error(failure)])
                }
                fatal = failure
            case .reconnect(let delay, let failure):
                if let failure {
                    logger.warning("leader election session failed; reconnecting", metadata: ["election": "\(configuration.name)", "error": .error(failure), "delay": "\(delay)"])
                }
                if await OneShotSignal.firstFired(of: [stop], within: delay) == nil { continue }
            }
            break
        }
        finishChanges()
        if let fatal { throw fatal }
    }

    /// Opens the dedicated connection; a stop request abandons the attempt.
    private func connect() async throws -> PostgresConnection {
        let configuration = connectionConfiguration
        let logger = self.logger
        let stop = self.stop
        let connection = try await withThrowingTaskGroup(of: PostgresConnection?.self) { group -> PostgresConnection? in
            group.addTask {
                try await PostgresConnection.connect(configuration: configuration, id: Int.random(in: 1...Int(Int32.max)), logger: logger)
            }
            group.addTask {
                await stop.wait()
                return nil
            }
            let first = try await group.next()!
            group.cancelAll()
            if let first { return first }
            // Stopped while connecting: a connection that made it anyway is closed.
            while let late = try? await group.next() {
                await late?.closeDiscardingErrors()
            }
            return nil
        }
        guard let connection else { throw CancellationError() }
        return connection
    }

    /// One session on `connection`: prepare it, then poll for the lock and lead until a stop
    /// (returns, having resigned) or a failure (throws). `queued` turns true once the session
    /// is prepared and starts polling for the lock, `led` once it leads.
    private func runSession(on connection: PostgresConnection, queued: inout Bool, led: inout Bool) async throws {
        let configuration = self.configuration
        let logger = self.logger

        let pid = try await connection.runWithin(configuration.responseTimeout, "reading the backend pid", logger: logger) {
            try await connection.backendPID(logger: logger)
        }
        state.withLock { state in
            state.connection = connection
            state.backendPID = pid
        }
        try await configureSession(connection)
        try await ensureTermsTable(connection)
        queued = true

        while !stop.isFired {
            guard try await waitForLock(connection) else { continue }
            if stop.isFired {
                try await unlock(connection)
                return
            }
            let term = try await connection.runWithin(configuration.responseTimeout, "starting a new term", logger: logger) {
                try await connection.runStatement(
                    LeaderTermsSQL.bumpTerm(configuration.termsTable, election: configuration.name, holder: configuration.instanceID),
                    logger: logger
                ).rows[0].decode(Int64.self)
            }
            led = true
            publish(.leader(FencingToken(election: configuration.name, term: term, termsTable: configuration.termsTable)))
            try await holdLeadership(connection)
            return
        }
    }

    /// Asks the server to notice a vanished client within about the heartbeat bounds, so the
    /// lock of a dead instance is freed: TCP keepalives and `tcp_user_timeout` (TCP only) and
    /// `client_connection_check_interval` (PostgreSQL 14+, also ends a lock wait whose client
    /// went away). Settings the server does not know or support are skipped.
    private func configureSession(_ connection: PostgresConnection) async throws {
        let configuration = self.configuration
        let logger = self.logger
        let heartbeatSeconds = max(1, Int(configuration.heartbeatInterval.components.seconds) + (configuration.heartbeatInterval.components.attoseconds > 0 ? 1 : 0))
        let settings: [(String, String)] = [
            ("tcp_keepalives_idle", "\(heartbeatSeconds)"),
            ("tcp_keepalives_interval", "1"),
            ("tcp_keepalives_count", "3"),
            ("tcp_user_timeout", try TransactionOptions.milliseconds(configuration.responseTimeout, name: "responseTimeout")),
            ("client_connection_check_interval", try TransactionOptions.milliseconds(configuration.heartbeatInterval, name: "heartbeatInterval")),
        ]
        for (name, value) in settings {
            do {
                try await connection.runWithin(configuration.responseTimeout, "configuring the session", logger: logger) {
                    try await connection.runStatement("SELECT set_config(\(name), \(value), false)", logger: logger)
                }
            } catch let error as PostgresLocksError where error.sqlState != nil && error.code != .connectionLost {
                logger.debug("session setting not applied", metadata: ["setting": "\(name)", "error": .error(error)])
            }
        }
    }

    /// Creates the terms table if it is missing. Concurrent creations are serialized by a
    /// transaction-scoped advisory lock (two `CREATE TABLE IF NOT EXISTS` at once can fail).
    private func ensureTermsTable(_ connection: PostgresConnection) async throws {
        let configuration = self.configuration
        let logger = self.logger
        let table = configuration.termsTable
        try await connection.runWithin(configuration.responseTimeout, "creating the terms table", logger: logger) {
            let exists = try await connection.runStatement(LeaderTermsSQL.exists(table), logger: logger).rows[0].decode(Bool.self)
            if exists { return }
            try await connection.withCheckedTransaction(logger: logger) { tx in
                try await tx.query(AdvisoryLockSQL.call(AdvisoryLockSQL.lockFunction(scope: .transaction, mode: .exclusive, try: false), key: LeaderTermsSQL.creationLock(table)).query)
                try await tx.query(LeaderTermsSQL.create(table))
            }
        }
    }

    /// Tries the lock on the server every ``Configuration/lockPollInterval`` for about
    /// ``Configuration/retryInterval``, in one statement; true when taken.
    ///
    /// A poll rather than a wait in the lock queue: it ends without an error when the time is
    /// up (a `lock_timeout` would put an error line in the server's log every interval for
    /// every follower), and a follower never shows in `pg_locks` as waiting, so monitoring
    /// does not report the healthy leader as a blocker. It takes the lock at most once
    /// (``AdvisoryLockSQL/pollSessionLock(_:mode:attempts:stepMilliseconds:)``).
    private func waitForLock(_ connection: PostgresConnection) async throws -> Bool {
        let configuration = self.configuration
        let logger = self.logger
        state.withLock { $0.waitingForLock = true }
        defer { state.withLock { $0.waitingForLock = false } }
        // Checked after `waitingForLock` is set: a stop request either is seen here or sees
        // the flag and closes the connection to end the poll.
        if stop.isFired { return false }
        let statement = AdvisoryLockSQL.pollSessionLock(
            configuration.key, mode: .exclusive,
            attempts: configuration.lockPollAttempts,
            stepMilliseconds: configuration.lockPollMilliseconds
        )
        // A failure closes the connection (the campaign reconnects); a session that took the
        // lock and then died released it with the session.
        return try await connection.runWithin(configuration.retryInterval + configuration.responseTimeout, "polling for the leader lock", logger: logger) {
            try await connection.runStatement(statement.query, logger: logger).rows[0].boolFromText()
        }
    }

    /// Leads until a stop (resigns and returns) or a lost session (throws).
    private func holdLeadership(_ connection: PostgresConnection) async throws {
        let configuration = self.configuration
        let loss = await connection.watchSession(
            every: configuration.heartbeatInterval, answerLimit: configuration.responseTimeout,
            holdCount: AdvisoryLockSQL.isHeld(configuration.key, mode: .exclusive), stop: stop,
            onUnanswered: {
                // Stop claiming leadership before closing the session releases the lock.
                self.publish(.follower)
            },
            logger: logger
        )
        if let loss {
            throw PostgresLocksError(code: .lockLost, message: "the leader's session ended: \(loss)")
        }
        // Resign: stop claiming leadership first, then release the lock.
        publish(.follower)
        try await unlock(connection)
    }

    /// Releases the lock (the caller closes the connection afterwards in any case).
    private func unlock(_ connection: PostgresConnection) async throws {
        let configuration = self.configuration
        let logger = self.logger
        let released = try await connection.runWithin(configuration.responseTimeout, "releasing the leader lock", logger: logger) {
            try await connection.runStatement(AdvisoryLockSQL.call(AdvisoryLockSQL.unlockFunction(mode: .exclusive), key: configuration.key).query, logger: logger).rows[0].boolFromText()
        }
        if !released {
            logger.warning("the leader lock was not held at resignation", metadata: ["election": "\(configuration.name)"])
        }
    }

    /// Errors that reconnecting cannot fix: authentication (class 28), a missing database or
    /// schema (3D, 3F), and permission, syntax or missing-object errors (class 42).
    static func isPermanent(_ error: any Error) -> Bool {
        let mapped = PostgresLocksError.wrap(error)
        if let error = mapped as? PostgresLocksError, error.code == .transactionPooling { return true }
        guard let error = mapped as? PostgresLocksError, let state = error.sqlState else { return false }
        return ["28", "3D", "3F", "42"].contains(String(state.prefix(2)))
    }
}

extension PostgresConnection {
    /// Runs `body` (statements on this connection); if it has not finished within `limit`,
    /// calls `onTimeout`, closes the connection, which makes its statements fail at once, and throws
    /// ``PostgresLocksError/Code/connectionLost``. A closed connection is the only way to end
    /// a statement whose answer never comes (a silent network failure).
    @discardableResult
    func runWithin<T: Sendable>(
        _ limit: Duration,
        _ what: String,
        logger: Logger,
        onTimeout: (@Sendable () -> Void)? = nil,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let timedOut = SetOnceFlag()
        do {
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask { try await body() }
                group.addTask {
                    do { try await Task.sleep(for: limit) } catch { return nil }
                    timedOut.set()
                    logger.warning("no answer from the server in time; closing the connection", metadata: ["during": "\(what)", "limit": "\(limit)"])
                    onTimeout?()
                    await self.closeDiscardingErrors()
                    return nil
                }
                while let result = try await group.next() {
                    if let value = result {
                        group.cancelAll()
                        return value
                    }
                }
                throw PostgresLocksError.connectionLost(what)
            }
        } catch {
            if timedOut.isSet {
                throw PostgresLocksError(code: .connectionLost, message: "no answer within \(limit) while \(what); the connection was closed", underlying: error)
            }
            throw error
        }
    }
}
