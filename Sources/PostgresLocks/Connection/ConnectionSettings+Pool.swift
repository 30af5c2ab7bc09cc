import Logging
import PostgresNIO
import Synchronization

// MARK: - A pool that does not grow with work

extension ConnectionSettings {
    /// The most connections ``makeClientConfiguration(poolSize:)`` opens when none is given.
    ///
    /// Every process holds this many server connections for as long as its client runs: the
    /// sum over all processes must stay below the server's `max_connections` (less its
    /// `superuser_reserved_connections`).
    public static let defaultPoolSize = 10
}

extension PostgresClient.Configuration.Options {
    /// The idle timeout of the recommended pool (``useRecommendedPool(connections:idleTimeout:)``).
    public static let recommendedIdleTimeout: Duration = .seconds(2)

    /// Makes the pool one whose memory does not grow with the calls it serves, and that
    /// survives its connections being closed under it.
    ///
    /// Sets `maximumConnections` to `connections`, opened on demand (`minimumConnections = 0`),
    /// turns the pool's keep-alive queries off (`keepAliveBehavior = nil`) and closes a
    /// connection that stayed idle for `idleTimeout` (default 2 s).
    ///
    /// Why: every return of a connection to PostgresNIO's pool starts timer tasks (a 30 s
    /// keep-alive, and an idle timeout, 60 s by default, for connections above
    /// `minimumConnections`); a timer cancelled early keeps about 1.3 KB until its original
    /// deadline, so a busy client holds memory in proportion to calls per second × 90 s (at
    /// 10,000 calls/s, over a gigabyte). Here only the idle timer runs, for `idleTimeout`: the
    /// memory it holds is bounded by calls per second × `idleTimeout` × 1.3 KB (about 25 MiB at
    /// 10,000 calls/s) and does not grow with time.
    ///
    /// Why not a fixed pool (`minimumConnections = maximumConnections`), which starts no timer at
    /// all: PostgresNIO 1.33 stops the process with a failed precondition
    /// (`PoolStateMachine+ConnectionGroup.swift:163`) when a lease arrives while fewer than
    /// `minimumConnections` connections are open, which happens when the server restarts (tested:
    /// `aPoolWithAMinimumCrashesWhenTheServerRestarts`). Keep `minimumConnections` at 0.
    ///
    /// Without keep-alive queries, an idle connection that the network dropped silently is
    /// noticed on its next use (the call fails with `connectionLost`, which
    /// ``RetryPolicy/retryOnConnectionLoss`` re-runs); a connection the server closed (restart,
    /// `pg_terminate_backend`) is dropped by the pool at once. With a 2 s idle timeout few
    /// connections stay idle long enough to meet a middlebox's timeout.
    ///
    /// - Throws: ``PostgresLocksError`` `invalidArgument` if `connections` is below 1 or
    ///   `idleTimeout` is not positive.
    public mutating func useRecommendedPool(connections: Int, idleTimeout: Duration = recommendedIdleTimeout) throws {
        try PostgresLocksError.require(connections >= 1, "a pool needs at least 1 connection; got \(connections)")
        try PostgresLocksError.require(idleTimeout > .zero, "the idle timeout must be positive; got \(idleTimeout)")
        minimumConnections = 0
        maximumConnections = connections
        keepAliveBehavior = nil
        connectionIdleTimeout = idleTimeout
    }

    /// Why a client with these options holds more memory the more calls it makes, or can be
    /// stopped by its pool; `nil` when neither.
    ///
    /// Reported: keep-alive queries on (`keepAliveBehavior` not `nil`, PostgresNIO's default);
    /// an idle timeout above 10 s (PostgresNIO's default is 60 s: the timer started on every
    /// return holds its memory that long); and `minimumConnections` above 0 (PostgresNIO 1.33
    /// stops the process when a lease arrives while fewer connections are open, as after a
    /// server restart). ``useRecommendedPool(connections:idleTimeout:)`` fixes all three.
    public var memoryGrowthWarning: String? {
        var causes: [String] = []
        if let keepAlive = keepAliveBehavior {
            causes.append("keep-alive queries are on (every \(Self.describe(keepAlive.frequency)))")
        }
        if connectionIdleTimeout > .seconds(10) {
            causes.append("the idle timeout is \(Self.describe(connectionIdleTimeout)), started every time a connection goes back")
        }
        var warning: [String] = []
        if !causes.isEmpty {
            let held = (keepAliveBehavior.map { $0.frequency } ?? .zero) + connectionIdleTimeout
            warning.append("this PostgresClient holds memory in proportion to its calls per second: \(causes.joined(separator: "; and ")); each such timer keeps about 1.3 KB until its deadline even when cancelled, so at 10,000 calls/s it holds about \(Self.estimateMiB(callsPerSecond: 10_000, held: held)) MiB")
        }
        if minimumConnections > 0 {
            warning.append("minimumConnections is \(minimumConnections): PostgresNIO 1.33 stops the process (a failed precondition) when a lease arrives while fewer connections are open, as happens when the server restarts")
        }
        guard !warning.isEmpty else { return nil }
        return warning.joined(separator: ". ") + ". Use ConnectionSettings.makeClientConfiguration(poolSize:) or options.useRecommendedPool(connections:)"
    }

    private static func describe(_ duration: Duration) -> String {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return seconds == seconds.rounded() ? "\(Int(seconds)) s" : "\(seconds) s"
    }

    private static func estimateMiB(callsPerSecond: Double, held: Duration) -> Int {
        let seconds = Double(held.components.seconds) + Double(held.components.attoseconds) / 1e18
        return Int((callsPerSecond * seconds * PostgresClient.Configuration.retainedBytesPerTimer / 1_048_576).rounded())
    }
}

extension PostgresClient.Configuration {
    /// What one pool timer keeps until its deadline, as measured (release build, Linux: the
    /// default pool's plateau of about 185 MiB at 1,695 calls/s with both timers, 90 s): the
    /// basis of the estimate in `Options.memoryGrowthWarning`.
    static let retainedBytesPerTimer = 1_300.0

    /// Why a client with this configuration holds more memory the more calls it makes (or can
    /// be stopped by its pool: `minimumConnections` above 0); `nil` when it does not. See
    /// `Options.memoryGrowthWarning`.
    ///
    /// ```swift
    /// let configuration = try settings.makeClientConfiguration(poolSize: 16)
    /// assert(configuration.memoryGrowthWarning == nil)
    /// ```
    public var memoryGrowthWarning: String? { options.memoryGrowthWarning }

    /// Logs `memoryGrowthWarning` at warning level, once per process (later calls with a
    /// configuration that grows log nothing), and returns whether the configuration grows.
    ///
    /// Call it where the client is made:
    ///
    /// ```swift
    /// let configuration = try settings.makeClientConfiguration()
    /// configuration.warnIfMemoryGrows(logger: logger)
    /// let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
    /// ```
    @discardableResult
    public func warnIfMemoryGrows(logger: Logger) -> Bool {
        guard let warning = memoryGrowthWarning else { return false }
        if MemoryGrowthWarningLog.logged.exchange(true, ordering: .relaxed) == false {
            logger.warning("\(warning)")
        }
        return true
    }
}

/// Whether the memory-growth warning was logged in this process.
enum MemoryGrowthWarningLog {
    static let logged = Atomic<Bool>(false)
}
