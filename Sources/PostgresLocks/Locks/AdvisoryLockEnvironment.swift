import Logging
import PostgresNIO

/// What ``PostgresNIO/PostgresClient/checkAdvisoryLockEnvironment(logger:)`` found.
public struct AdvisoryLockEnvironment: Sendable, Hashable, Codable {
    /// `server_version` as the server reports it.
    public var serverVersion: String
    /// What sits between the client's connections and their server sessions (see
    /// ``ConnectionPooling``).
    public var pooling: ConnectionPooling
    /// Whether a second session was refused an exclusive advisory lock the first one held;
    /// nil when it could not be asked (behind transaction pooling two client connections may
    /// share one server session, which holds its own locks again).
    public var advisoryLocksExclude: Bool?

    /// Whether each client connection keeps its server session (false behind a
    /// transaction-pooling proxy such as PgBouncer in transaction mode).
    public var sessionIsStable: Bool { pooling != .transactionPooling }

    /// Whether session advisory locks can be trusted here.
    public var supportsSessionLocks: Bool { sessionIsStable && advisoryLocksExclude == true }
}

extension PostgresClient {
    /// Checks, before session locks are trusted, that this server and the path to it give
    /// real session advisory locks:
    /// - a transaction-pooling proxy hands each transaction to another server process, so a
    ///   session lock is stranded on a process the client no longer talks to: found by the
    ///   pooling probe (see ``connectionPooling(logger:)``);
    /// - an engine that accepts the functions but does not exclude (some PostgreSQL-compatible
    ///   systems): found when a second session gets the same exclusive key.
    ///
    /// Needs two connections from the pool.
    ///
    /// - Throws: ``PostgresLocksError/Code/transactionPooling`` or
    ///   ``PostgresLocksError/Code/unsupportedEnvironment`` saying what was found.
    @discardableResult
    public func checkAdvisoryLockEnvironment(logger: Logger) async throws -> AdvisoryLockEnvironment {
        let environment = try await inspectAdvisoryLockEnvironment(logger: logger)
        if !environment.sessionIsStable {
            throw PostgresLocksError.transactionPooling(feature: "a session advisory lock")
        }
        if environment.advisoryLocksExclude == false {
            throw PostgresLocksError(
                code: .unsupportedEnvironment,
                message: "two sessions both obtained the same exclusive advisory lock: this server's advisory locks do not exclude (server_version \(environment.serverVersion))"
            )
        }
        return environment
    }

    /// Runs the checks of ``checkAdvisoryLockEnvironment(logger:)`` and reports, without throwing on findings.
    public func inspectAdvisoryLockEnvironment(logger: Logger) async throws -> AdvisoryLockEnvironment {
        do {
            return try await withConnection { first in
                let version = try await first.runStatement("SHOW server_version", logger: logger).rows[0].decode(String.self)
                return try await withConnection { second in
                    let pooling = try await PoolingProbe.run(first: first, second: second, logger: logger)
                    guard pooling != .transactionPooling else {
                        return AdvisoryLockEnvironment(serverVersion: version, pooling: pooling, advisoryLocksExclude: nil)
                    }
                    let key = LockKey.pair(namespace: Self.environmentCheckNamespace, id: Int32.random(in: 1...Int32.max))
                    let tryLock = AdvisoryLockSQL.call(AdvisoryLockSQL.lockFunction(scope: .session, mode: .exclusive, try: true), key: key).query
                    let firstGot = try await first.runStatement(tryLock, logger: logger).rows[0].boolFromText()
                    let secondGot = try await second.runStatement(tryLock, logger: logger).rows[0].boolFromText()
                    if secondGot { await second.releaseSessionLock(key, mode: .exclusive, expectHeld: true, logger: logger) }
                    if firstGot { await first.releaseSessionLock(key, mode: .exclusive, expectHeld: true, logger: logger) }
                    return AdvisoryLockEnvironment(serverVersion: version, pooling: pooling, advisoryLocksExclude: firstGot && !secondGot)
                }
            }
        } catch {
            throw PostgresLocksError.wrap(error)
        }
    }

    /// The int4-pair namespace the environment check locks in ("PLCK").
    static let environmentCheckNamespace: Int32 = 0x504C_434B
}
