import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Leader election among service instances through a PostgreSQL session advisory lock, with
/// fencing tokens; a swift-service-lifecycle `Service`.
///
/// Every instance runs a `LeaderElection` with the same ``Configuration/name``. Each holds a
/// dedicated connection (outside any pool) and polls one advisory lock on the server (a try
/// every ``Configuration/lockPollInterval``, never an error and never a waiter in `pg_locks`);
/// the session that holds it leads. On taking the lock the leader starts a new term in the terms table and
/// receives its number as a ``FencingToken``, which it uses to fence its writes with
/// ``Transaction/requireCurrentTerm(_:)``.
///
/// ```swift
/// let election = try LeaderElection(configuration: .init(name: "billing-scheduler", connection: settings), logger: logger)
/// let group = ServiceGroup(services: [client, election, scheduler], gracefulShutdownSignals: [.sigterm], logger: logger)
///
/// // In the scheduler's run(): the work runs whenever this instance leads, is cancelled when
/// // it stops leading, and starts again on the next term; a change of leader never throws.
/// try await election.whileLeading { token in
///     try await scheduleDueJobs(fencedBy: token)   // fence every write with `token`
/// }
/// ```
///
/// Guarantees:
/// - **At most one lock holder.** Only one session holds the lock; terms only grow, so a
///   deposed leader that has not noticed yet is fenced off by the database.
/// - **Bounded detection.** A leader whose connection closes learns it at once; a silent
///   network failure within ``Configuration/heartbeatInterval`` +
///   ``Configuration/responseTimeout``. It then emits ``LeadershipChange/follower``,
///   reconnects with backoff and polls again. The server is told to detect a vanished client
///   too (TCP keepalives, `tcp_user_timeout`, `client_connection_check_interval` on the
///   session), so the lock of a dead instance is freed and a follower takes over.
/// - **Resign on shutdown.** On graceful shutdown or cancellation of ``run()``, the leader
///   emits ``LeadershipChange/follower``, unlocks, closes its connection, finishes every
///   stream of changes and returns.
///
/// The election's connection runs only the election's statements; use your own client for
/// the work.
public final class LeaderElection: Service, Sendable {
    /// The configuration this election runs with.
    public let configuration: Configuration
    /// Where the election logs its transitions and failures.
    let logger: Logger

    let connectionConfiguration: PostgresConnection.Configuration
    let stop = OneShotSignal()
    let state = Mutex(State())

    struct State {
        var started = false
        var finished = false
        var current: LeadershipChange = .follower
        var backendPID: Int32?
        var connection: PostgresConnection?
        var waitingForLock = false
        var nextSubscriberID: UInt64 = 0
        var subscribers: [UInt64: AsyncStream<LeadershipChange>.Continuation] = [:]
    }

    /// Creates an election; nothing is sent to the server until ``run()``.
    ///
    /// - Parameters:
    ///   - configuration: which election, how to connect, and its intervals.
    ///   - logger: where the election logs its transitions and failures.
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` for an empty name, a duration that
    ///   is not positive, or connection settings that cannot be turned into a configuration.
    public init(configuration: Configuration, logger: Logger) throws(PostgresLocksError) {
        try configuration.validate()
        let settings = configuration.connection.named("pglocks-leader", instance: configuration.instanceID)
        do {
            self.connectionConfiguration = try settings.makeConnectionConfiguration()
        } catch {
            throw .invalidArgument("the connection settings cannot be used: \(error)")
        }
        self.configuration = configuration
        self.logger = logger
    }

    /// The token of the current term if this instance leads now, else `nil`. Cheap and
    /// synchronous; it turns `nil` before the lock is released on resignation.
    public var currentToken: FencingToken? {
        state.withLock { $0.current.token }
    }

    /// Whether this instance leads now.
    public var isLeader: Bool { currentToken != nil }

    /// The server process id (`pg_backend_pid()`) of the election's current session, if
    /// connected: the row to look for in `pg_stat_activity` or `pg_locks`.
    public var sessionBackendPID: Int32? {
        state.withLock { $0.backendPID }
    }

    /// Runs the election until graceful shutdown or cancellation: connects, polls for the lock,
    /// leads when granted, and reconnects after failures. On shutdown it resigns (unlocks and
    /// closes its connection) and returns.
    ///
    /// - Throws: ``PostgresLocksError`` for failures that retrying cannot fix (authentication,
    ///   a missing database, no permission to create or write the terms table), and
    ///   ``PostgresLocksError/Code/invalidArgument`` if `run()` is called a second time.
    public func run() async throws {
        let first = state.withLock { state -> Bool in
            defer { state.started = true }
            return !state.started
        }
        guard first else {
            throw PostgresLocksError.invalidArgument("run() was already called on this LeaderElection; create a new one to run again")
        }
        // Cancellation and graceful shutdown ask the campaign to stop; it resigns (a cancelled
        // unlock still ends with the connection closed, which frees the lock) and returns.
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await self.campaign()
        } onCancelOrGracefulShutdown: {
            self.requestStop()
        }
    }

    /// Asks the campaign to stop: wakes its waits and, if it is polling for the lock, closes the
    /// connection so the server-side wait ends at once.
    func requestStop() {
        stop.fire()
        let waiting = state.withLock { $0.waitingForLock ? $0.connection : nil }
        if let waiting {
            let closing: EventLoopFuture<Void> = waiting.close()
            closing.whenComplete { _ in }
        }
    }
}
