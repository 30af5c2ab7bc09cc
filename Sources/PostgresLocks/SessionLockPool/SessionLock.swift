/// A session advisory lock held by a ``SessionLockPool`` until ``release()``: for lifetimes that
/// do not fit a closure (held across a stream, released from another call).
///
/// It cannot be copied, so it is released at most once; `release()` consumes it, so it cannot
/// be used after. Dropped without `release()`, it is released in the background by its pool
/// (and a warning is logged): the lock never outlives its last owner.
///
/// ```swift
/// let lock = try await locks.acquire(.hashed("tenant:acme"), logger: logger)
/// try await migrate(tenant: "acme")
/// try await lock.release()
/// ```
public struct SessionLock: ~Copyable, Sendable {
    /// The lock's key.
    public let key: LockKey
    /// Its mode.
    public let mode: LockMode
    let token: SessionLockToken

    /// Whether the session carrying the lock has ended (the lock is gone with it).
    public var isLost: Bool { token.pool.isLost(token.hold) }

    /// Releases the lock (`pg_advisory_unlock` on the session carrying it).
    ///
    /// - Throws: ``PostgresLocksError/Code/lockLost`` when the session carrying it ended before
    ///   (nothing held to release); other ``PostgresLocksError``s when the unlock failed, in which
    ///   case its session is closed, which releases every lock on it.
    public consuming func release() async throws {
        token.markReleased()
        try await token.pool.release(token.hold)
    }

    deinit {
        if token.markReleased() {
            token.pool.releaseDropped(token.hold, key: key)
        }
    }
}

/// What a ``SessionLock`` refers to, and whether it was released.
final class SessionLockToken: Sendable {
    let pool: SessionLockPool
    let hold: SessionLockPoolState.HoldID
    private let released = SetOnceFlag()

    init(pool: SessionLockPool, hold: SessionLockPoolState.HoldID) {
        self.pool = pool
        self.hold = hold
    }

    /// Marks the lock released; true for the first call.
    @discardableResult
    func markReleased() -> Bool { released.setIfClear() }
}
