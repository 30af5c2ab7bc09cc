import Logging
import PostgresNIO
import Synchronization

/// What the library keeps per `PostgresClient`: the caller's settings and what it learned
/// about the path to the server. One per client, found through a process-wide registry.
final class LibraryClientState: Sendable {
    private struct State {
        var preparation = StatementPreparation.automatic
        var pooling: ConnectionPooling?
        var probe: Task<ConnectionPooling?, Never>?
        var lastInconclusiveProbe: ContinuousClock.Instant?
        var preparationFallbackLogged = false
    }

    private let state = Mutex(State())
    /// Whether hot statements run unnamed on this client's connections (the setting is
    /// `.disabled`, or a fallback was decided); read on every hot statement.
    let runsUnnamed = Atomic<Bool>(false)
    /// Whether a probe has run to its end, conclusive or not (read on every call through the
    /// client: only the first calls wait for a probe).
    let probed = Atomic<Bool>(false)

    /// How long after an inconclusive probe a session feature runs it again.
    static let inconclusiveProbeRetryInterval: Duration = .seconds(30)

    private static let registry = ObjectRegistry<PostgresClient, LibraryClientState>(sweepAbove: 64)

    /// The state of `client`, created on first use.
    static func of(_ client: PostgresClient) -> LibraryClientState {
        registry.state(of: client) { LibraryClientState() }.state
    }

    var preparation: StatementPreparation {
        get { state.withLock { $0.preparation } }
        set {
            state.withLock { $0.preparation = newValue }
            runsUnnamed.store(newValue == .disabled || pooling == .transactionPooling, ordering: .relaxed)
        }
    }

    /// What the probe found, once it ran (nil before).
    var pooling: ConnectionPooling? { state.withLock { $0.pooling } }

    /// Switches this client's hot statements to unnamed ones, logging the reason once.
    func fallBackToUnnamedStatements(reason: String, logger: Logger) {
        runsUnnamed.store(true, ordering: .relaxed)
        let first = state.withLock { state -> Bool in
            defer { state.preparationFallbackLogged = true }
            return !state.preparationFallbackLogged
        }
        if first {
            logger.notice("running the library's statements unnamed on this client from now on", metadata: ["reason": "\(reason)"])
        }
    }

    /// Records what the caller says sits between the client and the server, instead of probing.
    func declare(_ pooling: ConnectionPooling, logger: Logger) {
        guard pooling != .unknown else { return }
        state.withLock { $0.pooling = pooling }
        probed.store(true, ordering: .releasing)
        record(pooling, logger: logger)
    }

    /// Starts the pooling probe for `client` in the background unless one ran or runs: calls
    /// that do not need the answer go on meanwhile (with unnamed statements, see
    /// ``ConnectionWatch/runsUnnamed``).
    func startProbeIfNeeded(client: PostgresClient, logger: Logger) {
        let start = state.withLock { state -> Bool in
            state.pooling == nil && state.probe == nil && state.lastInconclusiveProbe == nil
        }
        guard start else { return }
        Task { _ = await self.probeIfNeeded(client: client, logger: logger) }
    }

    /// Runs the pooling probe for `client` unless an answer is known (callers arriving
    /// meanwhile wait for the same run) and returns what it found.
    ///
    /// A conclusive answer is kept for the client's life. An inconclusive one (`.unknown`: no
    /// second connection in time, the server unreachable) is not: with `retryInconclusive`
    /// (session features) the probe runs again once ``inconclusiveProbeRetryInterval`` has
    /// passed; without it (transaction-scoped calls) `.unknown` is returned at once.
    func probeIfNeeded(client: PostgresClient, logger: Logger, retryInconclusive: Bool = false) async -> ConnectionPooling {
        let task = state.withLock { state -> Task<ConnectionPooling?, Never>? in
            if state.pooling != nil { return nil }
            if let probe = state.probe { return probe }
            if let last = state.lastInconclusiveProbe,
               !retryInconclusive || ContinuousClock.now - last < Self.inconclusiveProbeRetryInterval {
                return nil
            }
            let probe = Task { await Self.probe(client: client, logger: logger) }
            state.probe = probe
            return probe
        }
        guard let task else { return pooling ?? .unknown }
        let found = await task.value
        state.withLock { state in
            guard state.probe == task else { return }
            state.probe = nil
            if let found, found != .unknown {
                state.pooling = found
            } else {
                state.lastInconclusiveProbe = .now
            }
        }
        probed.store(true, ordering: .releasing)
        guard let found, found != .unknown else { return .unknown }
        record(found, logger: logger)
        return found
    }

    private func record(_ pooling: ConnectionPooling, logger: Logger) {
        if pooling == .transactionPooling {
            fallBackToUnnamedStatements(reason: "a transaction-pooling proxy is between this client and the server: statements prepared on one server session are not there on the next", logger: logger)
            logger.notice("transaction pooling detected: transaction-scoped features work; session locks, singletons, leader election and LISTEN are refused")
        }
    }

    /// How long the probe waits for its second connection: a pool of one never gives it, and
    /// a loaded server may take seconds to open one.
    static let secondLeaseLimit: Duration = .seconds(10)

    /// Leases two connections at once (the second bounded, so a pool of one cannot deadlock)
    /// and runs ``PoolingProbe``. Nil when the probe could not run.
    private static func probe(client: PostgresClient, logger: Logger) async -> ConnectionPooling? {
        do {
            return try await client.withConnection { first in
                let second = try await withSecondLease(client: client, within: secondLeaseLimit) { second in
                    try await PoolingProbe.run(first: first, second: second, logger: logger)
                }
                return second ?? .unknown
            }
        } catch {
            logger.debug("the pooling probe could not run", metadata: ["error": .error(error)])
            return nil
        }
    }

    /// Runs `body` on a second pooled connection if a lease is granted within `limit` (the body
    /// itself is not bounded); nil otherwise.
    private static func withSecondLease(
        client: PostgresClient,
        within limit: Duration,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> ConnectionPooling
    ) async throws -> ConnectionPooling? {
        enum Event: Sendable { case done(ConnectionPooling), timerFired }
        let started = SetOnceFlag()
        return try await withThrowingTaskGroup(of: Event.self) { group in
            group.addTask {
                .done(try await client.withConnection { connection in
                    started.set()
                    return try await body(connection)
                })
            }
            group.addTask {
                try? await Task.sleep(for: limit)
                return .timerFired
            }
            while let event = try await group.next() {
                switch event {
                case .done(let value):
                    group.cancelAll()
                    return value
                case .timerFired:
                    if !started.isSet {
                        group.cancelAll()  // the pending lease is withdrawn
                        return nil
                    }
                }
            }
            return nil
        }
    }
}
