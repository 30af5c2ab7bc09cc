import Logging
import PostgresNIO

extension PostgresClient {
    /// Takes a **session** advisory lock on a leased connection, runs `body` outside any
    /// transaction (so the lock can span many transactions and long work), and releases it.
    ///
    /// What this guarantees:
    /// - **No leak into the pool**: the lock is released before the connection goes back; if
    ///   the release cannot be confirmed, the connection is closed instead (the server then
    ///   drops the lock with the session).
    /// - **Lost lock**: if the connection dies while `body` runs (backend terminated, server
    ///   restarted, network gone, noticed by a heartbeat every `heartbeat` that asks the server
    ///   whether this session still holds the lock), `body` is
    ///   cancelled and the call throws ``PostgresLocksError/Code/lockLost``.
    /// - **Cancellation** while waiting ends the server-side wait and leaves no lock held.
    ///
    /// - **Never without the lock behind a pooler**: behind a transaction-pooling proxy (found
    ///   by ``PostgresNIO/PostgresClient/connectionPooling(logger:)`` on the client's first call)
    ///   the call throws ``PostgresLocksError/Code/transactionPooling`` before taking anything,
    ///   and each heartbeat checks that the connection's server process still holds the lock.
    ///
    /// `body` must not run statements on the lock's connection (it is not given one); use the
    /// client for its own work.
    @discardableResult
    public func withSessionAdvisoryLock<Result: Sendable>(
        _ key: LockKey,
        mode: LockMode = .exclusive,
        wait: LockWait = .forever,
        heartbeat: Duration? = .seconds(5),
        logger: Logger,
        _ body: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        _ = try wait.lockTimeoutSetting()
        return try await withSessionHold(of: "a session advisory lock", heartbeat: heartbeat, logger: logger, body) { connection in
            try await connection.takeSessionLock(key, mode: mode, wait: wait, canceller: self, logger: logger)
            return (key, mode)
        }
    }

    /// Leases a connection, takes a session lock on it with `take` (which throws
    /// ``PostgresLocksError/Code/lockTimeout`` when it gets none, and leaves nothing held when it
    /// throws), runs `body` outside any transaction while a heartbeat watches the session, and
    /// releases the lock; see ``withSessionAdvisoryLock(_:mode:wait:heartbeat:logger:_:)``.
    func withSessionHold<Result: Sendable>(
        of feature: String,
        heartbeat: Duration?,
        logger: Logger,
        _ body: @escaping @Sendable () async throws -> Result,
        take: (PostgresConnection) async throws -> (key: LockKey, mode: LockMode)
    ) async throws -> Result {
        if let heartbeat, heartbeat <= .zero {
            throw PostgresLocksError.invalidArgument("heartbeat must be positive; found \(heartbeat)")
        }
        let verifyHolder = try await requireServerSession(for: feature, logger: logger)
        do {
            return try await withLibraryConnection(logger: logger) { connection in
                let (key, mode) = try await take(connection)
                if verifyHolder {
                    // The pooling probe could not tell: make sure this session holds the lock
                    // before the body runs. Unconfirmed, the connection is closed, so that no
                    // lock goes back to the pool with it.
                    let held: Int64
                    do {
                        held = try await connection.runStatement(AdvisoryLockSQL.isHeld(key, mode: mode), logger: logger).rows[0].decode(Int64.self)
                    } catch {
                        await connection.closeDiscardingErrors()
                        throw error
                    }
                    guard held > 0 else {
                        await connection.closeDiscardingErrors()
                        throw PostgresLocksError.transactionPooling(feature: feature)
                    }
                }
                let outcome = await connection.runGuardingSession(key: key, mode: mode, heartbeat: heartbeat, logger: logger, body)
                if case .failure(let error as PostgresLocksError) = outcome, error.code == .lockLost {
                    // The session is gone or unanswering: never send it more statements.
                    await connection.closeDiscardingErrors()
                } else {
                    await connection.releaseSessionLock(key, mode: mode, expectHeld: true, logger: logger)
                }
                return try outcome.get()
            }
        } catch {
            throw PostgresLocksError.wrap(error)
        }
    }
}
