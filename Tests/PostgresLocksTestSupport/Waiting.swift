import AsyncAlgorithms
import Foundation
import PostgresNIO
import Synchronization

/// Polls `condition` until it is true or `timeout` passes; the way tests wait for a state
/// (a lock granted, a waiter visible in `pg_locks`) instead of sleeping. The default limit is
/// generous: it is reached only when something is wrong, and a loaded CI machine can take
/// seconds for what takes milliseconds here.
public func waitUntil(
    timeout: Duration = .seconds(30),
    pollEvery interval: Duration = .milliseconds(5),
    _ what: String,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    if try await condition() { return }
    // Re-check the condition on every tick of a timer until it holds or the deadline passes.
    for await _ in AsyncTimerSequence(interval: interval, clock: ContinuousClock()) {
        try Task.checkCancellation()
        if try await condition() { return }
        guard ContinuousClock.now < deadline else { break }
    }
    try Task.checkCancellation()
    throw TestFailure("timed out after \(timeout) waiting until \(what)")
}

/// Checks `condition` again and again for `duration` and fails at the first check where it is
/// false: the way tests watch that something does NOT happen (a paused queue claims nothing).
/// Absence has no event to await; this at least fails as soon as the absence ends.
public func holdsThroughout(
    _ duration: Duration,
    pollEvery interval: Duration = .milliseconds(20),
    _ what: String,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + duration
    guard try await condition() else { throw TestFailure("\(what) did not hold at the start") }
    for await _ in AsyncTimerSequence(interval: interval, clock: ContinuousClock()) {
        try Task.checkCancellation()
        guard try await condition() else { throw TestFailure("\(what) stopped holding before \(duration) passed") }
        if ContinuousClock.now >= deadline { return }
    }
    try Task.checkCancellation()
}

/// Runs `operation` and fails if it has not finished within `limit`, even if it ignores
/// cancellation (the driver's hangs do): the operation runs in an unstructured task that is
/// abandoned when the limit passes.
public func withinTimeLimit<T: Sendable>(
    _ limit: Duration,
    _ what: String,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let once = Once(continuation)
        let work = Task {
            let result = await Result { try await operation() }
            once.take()?.resume(with: result)
        }
        Task {
            // The limit: the first tick of a timer `limit` from now.
            for await _ in AsyncTimerSequence(interval: limit, clock: ContinuousClock()) { break }
            if let pending = once.take() {
                work.cancel()
                pending.resume(throwing: TestFailure("\(what) did not finish within \(limit)"))
            }
        }
    }
}

private final class Once<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, any Error>?>
    init(_ continuation: CheckedContinuation<T, any Error>) { self.continuation = Mutex(continuation) }
    func take() -> CheckedContinuation<T, any Error>? { continuation.withLock { $0.take() } }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

/// A value shared between test tasks, behind a lock (a class, so closures can capture it).
public final class LockedBox<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    /// Creates a box holding `value`.
    public init(_ value: Value) { mutex = Mutex(value) }
    /// Runs `body` with the value locked.
    public func withLock<R: Sendable>(_ body: (inout Value) throws -> R) rethrows -> R {
        try mutex.withLock { try body(&$0) }
    }
    /// The current value.
    public var value: Value { mutex.withLock { $0 } }
}

/// Samples `query` (a count) from the database, again and again, until `body` returns; returns
/// the largest value seen (for limits that must hold at every moment). `samples`, when given,
/// counts the samples taken, so that work can wait until the sampler has seen it (see
/// ``waitUntilSampled(_:)``).
public func sampleMaximum(_ db: TestContext, _ query: PostgresQuery, samples: LockedBox<Int>? = nil, while body: @Sendable () async throws -> Void) async throws -> Int {
    let stop = LockedBox(false)
    return try await withThrowingTaskGroup(of: Int.self) { group in
        group.addTask {
            var maximum = 0
            while !stop.value {
                maximum = max(maximum, try await db.scalar(query, as: Int.self))
                samples?.withLock { $0 += 1 }
            }
            return maximum
        }
        do { try await body() } catch { stop.withLock { $0 = true }; throw error }
        stop.withLock { $0 = true }
        return try await group.next()!
    }
}

/// Waits until ``sampleMaximum(_:_:samples:while:)`` has taken a whole sample after this call:
/// a job that calls it from its handler stays running until the sampler has seen it running.
public func waitUntilSampled(_ samples: LockedBox<Int>) async throws {
    // The sample under way may have read before this job was marked running: wait for the next one.
    let seen = samples.value
    try await waitUntil(pollEvery: .milliseconds(1), "the sampler sees this job running") { samples.value >= seen + 2 }
}
