import Logging
import PostgresNIO

/// What ``PostgresNIO/PostgresClient/checkAdvisoryLockEnvironment(logger:)`` found.
public struct AdvisoryLockEnvironment: Sendable, Hashable, Codable {
    /// `server_version` as the server reports it.
    public var serverVersion: String
    /// Whether one connection kept the same server process across two transactions
    /// (false behind a transaction-pooling proxy such as PgBouncer in transaction mode).
    public var sessionIsStable: Bool
    /// Whether a second session was refused an exclusive advisory lock the first one held.
    public var advisoryLocksExclude: Bool

    /// Whether session advisory locks can be trusted here.
    public var supportsSessionLocks: Bool { sessionIsStable && advisoryLocksExclude }
}

extension PostgresClient {
    /// Checks, before session locks are trusted, that this server and the path to it give
    /// real session advisory locks:
    /// - a transaction-pooling proxy hands each transaction to another server process, so a
    ///   session lock is stranded on a process the client no longer talks to: detected when
    ///   `pg_backend_pid()` changes between two transactions on one connection;
    /// - an engine that accepts the functions but does not exclude (some PostgreSQL-compatible
    ///   systems): detected when a second session gets the same exclusive key.
    ///
    /// Needs two connections from the pool.
    ///
    /// - Throws: ``PostgresLocksError/Code/unsupportedEnvironment`` saying what was found.
    @discardableResult
    public func checkAdvisoryLockEnvironment(logger: Logger) async throws -> AdvisoryLockEnvironment {
        let environment = try await inspectAdvisoryLockEnvironment(logger: logger)
        if !environment.sessionIsStable {
            throw PostgresLocksError(
                code: .unsupportedEnvironment,
                message: "the server process changed between two transactions on one connection: a transaction-pooling proxy (e.g. PgBouncer in transaction mode) is in the way, so session advisory locks would be stranded",
                hint: "connect directly or through session pooling for session locks, or use transaction-scoped locks only"
            )
        }
        if !environment.advisoryLocksExclude {
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
                var pids: [Int32] = []
                for _ in 0..<2 {
                    let pid = try await first.withCheckedTransaction(logger: logger) { transaction in
                        try await transaction.query("SELECT pg_backend_pid()").rows[0].decode(Int32.self)
                    }
                    pids.append(pid)
                }
                let key = LockKey.pair(namespace: Self.environmentCheckNamespace, id: Int32.random(in: 1...Int32.max))
                let tryLock = AdvisoryLockSQL.call(AdvisoryLockSQL.lockFunction(scope: .session, mode: .exclusive, try: true), key: key).query
                let firstGot = try await first.runStatement(tryLock, logger: logger).rows[0].boolFromText()
                let secondGot = try await withConnection { second in
                    let got = try await second.runStatement(tryLock, logger: logger).rows[0].boolFromText()
                    if got { await second.releaseSessionLock(key, mode: .exclusive, expectHeld: true, logger: logger) }
                    return got
                }
                if firstGot { await first.releaseSessionLock(key, mode: .exclusive, expectHeld: true, logger: logger) }
                return AdvisoryLockEnvironment(
                    serverVersion: version,
                    sessionIsStable: pids[0] == pids[1],
                    advisoryLocksExclude: firstGot && !secondGot
                )
            }
        } catch {
            throw PostgresLocksError.wrap(error)
        }
    }

    /// The int4-pair namespace the environment check locks in ("PLCK").
    static let environmentCheckNamespace: Int32 = 0x504C_434B
}
