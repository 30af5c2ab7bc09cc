import Logging
import PostgresNIO

/// What a singleton call does when another instance is running the same job.
public enum SingletonPolicy: Sendable, Hashable {
    /// Return ``SingletonOutcome/skipped`` at once.
    case skip
    /// Wait for the running instance to finish, then run.
    case waitForTurn
    /// Wait at most this long, then return ``SingletonOutcome/skipped``.
    case waitAtMost(Duration)

    var lockWait: LockWait {
        switch self {
        case .skip: return .immediately
        case .waitForTurn: return .forever
        case .waitAtMost(let duration): return .timeout(duration)
        }
    }
}

/// The result of a singleton call: the body ran (with its value) or was skipped.
public enum SingletonOutcome<Value: Sendable>: Sendable {
    /// This instance ran the job.
    case ran(Value)
    /// Another instance was running it; this one did not.
    case skipped

    /// The value if the job ran here.
    public var value: Value? {
        if case .ran(let value) = self { return value }
        return nil
    }

    /// Whether the job was skipped.
    public var wasSkipped: Bool {
        if case .skipped = self { return true }
        return false
    }
}

extension PostgresClient {
    /// Runs `body` only if no other instance, in this process or any other, runs the job
    /// `name` at the same time.
    ///
    /// ```swift
    /// switch try await client.runSingleton("nightly-report", logger: logger, { try await buildReport() }) {
    /// case .ran(let report): logger.info("built \(report)")
    /// case .skipped: logger.info("another instance is building it")
    /// }
    /// ```
    ///
    /// The job holds a **session** advisory lock on `LockKey.hashed(name)` (the key Python's
    /// `string_to_lock_id(name)` gives, so Swift and Python workers exclude each other) for as
    /// long as `body` runs, so the job may run many transactions of its own through the client.
    /// The lock never leaks into the pool, and if its session dies `body` is cancelled and the
    /// call throws ``PostgresLocksError/Code/lockLost`` (see
    /// ``PostgresNIO/PostgresClient/withSessionAdvisoryLock(_:mode:wait:heartbeat:logger:_:)``).
    ///
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` for an empty name; `lockLost`;
    ///   whatever `body` throws.
    public func runSingleton<Value: Sendable>(
        _ name: String,
        ifRunning policy: SingletonPolicy = .skip,
        heartbeat: Duration? = .seconds(5),
        logger: Logger,
        _ body: @escaping @Sendable () async throws -> Value
    ) async throws -> SingletonOutcome<Value> {
        guard !name.isEmpty else { throw PostgresLocksError.invalidArgument("the singleton job name is empty") }
        do {
            let value = try await withSessionAdvisoryLock(.hashed(name), wait: policy.lockWait, heartbeat: heartbeat, logger: logger, body)
            return .ran(value)
        } catch let error as PostgresLocksError where error.code == .lockTimeout {
            logger.debug("singleton job skipped: another instance runs it", metadata: ["job": "\(name)"])
            return .skipped
        }
    }

    /// Serializes work per entity: calls for the same `(namespace, id)` run one at a time, in
    /// the order the server grants the lock; calls for different entities run in parallel.
    ///
    /// `body` runs in a transaction holding the entity's transaction-scoped advisory lock on
    /// `LockKey.pair(namespace:id:)`, released by the commit. Use one namespace per kind of
    /// entity (orders, accounts, …) so ids of different kinds never collide.
    public func withEntityLock<Result>(
        namespace: Int32,
        id: Int32,
        wait: LockWait = .forever,
        options: TransactionOptions = .default,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        try await withAdvisoryLock(.pair(namespace: namespace, id: id), wait: wait, options: options, logger: logger, body)
    }
}
