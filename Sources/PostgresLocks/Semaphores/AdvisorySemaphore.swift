/// A counting semaphore across a fleet: at most ``permits`` holders at a time, among every
/// process that uses the same name on the same database.
///
/// It is made of advisory locks, one per permit: permit `i` (from 0) of semaphore `name` is the
/// exclusive lock on ``LockKey/hashed(_:scheme:)`` of `"semaphore:<name>:<i>"`. A holder holds
/// exactly one of them, so there can never be more holders than permits, whatever fails: a
/// holder whose session ends loses its permit with its lock, and nothing is left to clean up.
///
/// Taking a permit:
/// 1. one statement tries the permits without waiting (`pg_try_advisory_…lock`), starting at
///    a random one so that takers spread over them, and stops at the first it gets;
/// 2. if all are taken, the taker waits **on the server** for the permit with the fewest
///    waiters (counted in `pg_locks`), like any lock wait: in FIFO order among that permit's
///    waiters, seen by deadlock detection, ended by cancellation or the wait's timeout.
///
/// Waits are first-come first-served per permit, not across the semaphore: a taker that finds
/// every permit held queues behind one holder, and a taker that comes later can get a permit
/// that was freed in the meantime. With holds of similar length this is close to one queue;
/// with very uneven holds, a waiter can wait for a long hold while another permit is free.
///
/// Every process must use the same `permits` for a name: a process that says more can hold a
/// permit the others do not know of (the bound is then the largest `permits` in use).
public struct AdvisorySemaphore: Sendable, Hashable, CustomStringConvertible {
    /// The most permits a semaphore can have: each is a lock key, and a taker that finds all of
    /// them taken tries every one in one statement.
    public static let maximumPermits = 1_024

    /// The semaphore's name, shared by every process that uses it.
    public let name: String
    /// How many holders it allows at once.
    public let permits: Int

    /// A semaphore named `name` with `permits` permits.
    ///
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` when the name is empty, longer than
    ///   ``LockKey/maximumTextLength`` bytes or contains NUL, or `permits` is not from 1 to
    ///   ``maximumPermits``.
    public init(_ name: String, permits: Int) throws(PostgresLocksError) {
        _ = try LockKey.named(name)
        try PostgresLocksError.require(
            (1...Self.maximumPermits).contains(permits),
            "a semaphore has 1 to \(Self.maximumPermits) permits; found \(permits)"
        )
        self.name = name
        self.permits = permits
    }

    /// The lock key of permit `index` (from 0).
    public func permitKey(_ index: Int) -> LockKey {
        .hashed("semaphore:\(name):\(index)")
    }

    /// The permits' keys in the order a taker tries them: every permit once, starting at
    /// `start` (taken modulo ``permits``) and wrapping around.
    func tryOrder(startingAt start: Int) -> [(index: Int, key: LockKey)] {
        let first = ((start % permits) + permits) % permits
        return (0..<permits).map { offset in
            let index = (first + offset) % permits
            return (index, permitKey(index))
        }
    }

    /// `semaphore "thumbnails" (4 permits)`.
    public var description: String { "semaphore \"\(name)\" (\(permits) permit\(permits == 1 ? "" : "s"))" }
}
