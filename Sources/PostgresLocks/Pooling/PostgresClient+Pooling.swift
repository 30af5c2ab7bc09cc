import Logging
import PostgresNIO

extension PostgresClient {
    /// How the library runs its hot statements on this client's connections; see
    /// ``StatementPreparation``. Default `.automatic`.
    public var statementPreparation: StatementPreparation {
        get { LibraryClientState.of(self).preparation }
        set { LibraryClientState.of(self).preparation = newValue }
    }

    /// Whether this client's connections reach the server through transaction pooling.
    ///
    /// The first call through the library on a client runs this probe once (later calls read
    /// the stored answer): it leases two connections and asks, in turn, which server process
    /// serves the first, the second, and the first again. The second served by a process that
    /// served the first, or the first moved to another process, shows transaction pooling. This
    /// cannot pass by chance on an idle pool, where a pooler hands the second connection the
    /// process the first just released; comparing the processes of two transactions on one
    /// connection can. The probe takes no lock and writes nothing.
    ///
    /// Returns ``ConnectionPooling/unknown`` when two connections cannot be had within ten
    /// seconds (a pool of one) or the server refused the probe; that answer is not kept, and
    /// session features ask again (at most every 30 seconds).
    public func connectionPooling(logger: Logger) async -> ConnectionPooling {
        await LibraryClientState.of(self).probeIfNeeded(client: self, logger: logger, retryInconclusive: true)
    }

    /// Tells the library what sits between this client's connections and the server, so it
    /// does not probe (see ``connectionPooling(logger:)``): for a deployment whose topology is
    /// known, or a client whose first call must not wait on a probe. `.unknown` is ignored.
    ///
    /// Declaring ``ConnectionPooling/sessionPerConnection`` behind a transaction pooler turns
    /// off the refusal of session features: the session-lock heartbeat's holder check remains.
    public func declareConnectionPooling(_ pooling: ConnectionPooling, logger: Logger) {
        LibraryClientState.of(self).declare(pooling, logger: logger)
    }

    /// Leases a connection for a library call: starts the pooling probe on the client's first
    /// call (in the background: until it answers, hot statements run unnamed), and ties the
    /// connection to the client's settings.
    ///
    /// A leased connection that is already closed goes back to the pool and another is leased:
    /// the pool can hand out a connection whose server process was just terminated before its
    /// event loop has noticed the close, and nothing has been sent on it, so leasing again is
    /// always safe. Bounded by ``deadLeaseBudget``; after that the body runs and meets the
    /// closed connection (``PostgresLocksError/Code/connectionLost``, nothing sent).
    func withLibraryConnection<Result>(
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        let state = LibraryClientState.of(self)
        if !state.probed.load(ordering: .acquiring) {
            state.startProbeIfNeeded(client: self, logger: logger)
        }
        var deadLeases = DeadLeaseRetry(budget: deadLeaseBudget)
        do {
            while true {
                let leased: Result? = try await withConnection { connection in
                    if connection.isClosed, deadLeases.shouldLeaseAgain(now: .now) { return nil }
                    ConnectionWatch.watch(connection).clientState = state
                    return try await body(connection)
                }
                if let leased { return leased }
                logger.debug("the pool handed out a closed connection; leasing another", metadata: ["dead_leases": "\(deadLeases.count)"])
                try await Task.sleep(for: deadLeases.pause)
            }
        } catch {
            throw PostgresLocksError.wrap(error)
        }
    }

    /// Throws ``PostgresLocksError/Code/transactionPooling`` when this client's connections go
    /// through transaction pooling, before anything that needs a server session starts.
    /// Returns whether the probe was inconclusive: the caller then checks, once it holds its
    /// lock, that its own server session holds it.
    func requireServerSession(for feature: String, logger: Logger) async throws -> Bool {
        let found = await LibraryClientState.of(self).probeIfNeeded(client: self, logger: logger, retryInconclusive: true)
        if found == .transactionPooling {
            throw PostgresLocksError.transactionPooling(feature: feature)
        }
        return found == .unknown
    }
}

extension PostgresConnection {
    /// How the library runs its hot statements on this connection; see ``StatementPreparation``.
    /// A connection leased through a library call on a `PostgresClient` follows the client's
    /// setting instead.
    public var statementPreparation: StatementPreparation {
        get { ConnectionWatch.watch(self).localPreparation }
        set { ConnectionWatch.watch(self).localPreparation = newValue }
    }
}

extension PostgresLocksError {
    /// The refusal of a feature that needs a server session, behind transaction pooling.
    static func transactionPooling(feature: String) -> PostgresLocksError {
        PostgresLocksError(
            code: .transactionPooling,
            message: "\(feature) needs a server session of its own, and this connection goes through a transaction-pooling proxy (such as PgBouncer with pool_mode = transaction), which hands each transaction to whichever server process is free: a session lock or LISTEN would stay behind on a process this client no longer talks to. Nothing was run.",
            hint: "use the pooler in session mode (pool_mode = session), or give this feature a direct URL to the server, or use the transaction-scoped form (withAdvisoryLock, which holds the lock for one transaction)"
        )
    }
}

extension PostgresConnection {
    /// For features that hold a dedicated connection's server session (leader election, the
    /// queue's `LISTEN`): opens two connections with `configuration`, runs the pooling probe on
    /// them (see ``PostgresNIO/PostgresClient/connectionPooling(logger:)``) and closes them.
    /// ``ConnectionPooling/unknown`` when they cannot be opened or the probe fails: the caller
    /// goes on, and its own checks (a session lock's holder in `pg_locks`) still hold.
    package static func probePooling(configuration: PostgresConnection.Configuration, logger: Logger) async -> ConnectionPooling {
        var opened: [PostgresConnection] = []
        do {
            for _ in 0..<2 {
                opened.append(try await PostgresConnection.connect(configuration: configuration, id: Int.random(in: 1...Int(Int32.max)), logger: logger))
            }
            let found = try await PoolingProbe.run(first: opened[0], second: opened[1], logger: logger)
            for connection in opened { await connection.closeDiscardingErrors() }
            return found
        } catch {
            logger.debug("the pooling probe could not run", metadata: ["error": .error(error)])
            for connection in opened { await connection.closeDiscardingErrors() }
            return .unknown
        }
    }
}
