import Logging
import PostgresNIO

extension PostgresClient {
    /// Runs `body` only if no other instance, in this process or any other, runs the job
    /// `name` at the same time.
    ///
    /// ```swift
    /// do {
    ///     let report = try await client.runSingleton("nightly-report", logger: logger) { try await buildReport() }
    ///     logger.info("built \(report)")
    /// } catch let error as PostgresLocksError where error.code == .lockTimeout {
    ///     logger.info("another instance is building it")
    /// }
    /// ```
    ///
    /// The job holds a **session** advisory lock on `LockKey.hashed(name)` (the `md5-8` key, so
    /// workers in other languages that hash the name the same way exclude each other) for as
    /// long as `body` runs, so the job may run many transactions of its own through the client.
    /// The lock never leaks into the pool, and if its session dies `body` is cancelled and the
    /// call throws ``PostgresLocksError/Code/lockLost`` (see
    /// ``PostgresNIO/PostgresClient/withSessionAdvisoryLock(_:mode:wait:heartbeat:logger:_:)``).
    ///
    /// - Parameters:
    ///   - name: the job's name.
    ///   - wait: `.immediately` (the default: skip the run when another instance is running
    ///     it), `.timeout(d)`, or `.forever` (wait for its turn).
    ///   - heartbeat: how often the lock's session is checked while `body` runs; nil for never.
    ///   - logger: where statements and lock events are logged.
    ///   - body: the job; cancelled if the lock's session dies.
    /// - Throws: ``PostgresLocksError/Code/lockTimeout`` when another instance runs the job
    ///   (`body` did not run); ``PostgresLocksError/Code/invalidArgument`` for an empty name;
    ///   `lockLost`; whatever `body` throws.
    @discardableResult
    public func runSingleton<Value: Sendable>(
        _ name: String,
        wait: LockWait = .immediately,
        heartbeat: Duration? = .seconds(5),
        logger: Logger,
        _ body: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        guard !name.isEmpty else { throw PostgresLocksError.invalidArgument("the singleton job name is empty") }
        do {
            return try await withSessionAdvisoryLock(.hashed(name), wait: wait, heartbeat: heartbeat, logger: logger, body)
        } catch let error as PostgresLocksError where error.code == .lockTimeout {
            logger.debug("singleton job not run: another instance runs it", metadata: ["job": "\(name)"])
            throw PostgresLocksError(code: .lockTimeout, message: "the singleton job is running elsewhere", underlying: error)
        }
    }
}
