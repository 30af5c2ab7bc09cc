import Foundation
import Synchronization
import Testing

/// Bounds how many tests drive a PostgreSQL server at once.
///
/// Swift Testing starts every test at the same moment; on a small CI machine a hundred tests
/// that each open pools, start servers and time their own heartbeats starve one another, and
/// tests that check a bound (a heartbeat, a pickup within seconds) fail for want of CPU, not
/// for a fault in the library. A test that needs a server holds one slot while it runs; a
/// nested request on the same task (a test whose helper asks again) reuses the slot it holds.
public enum ServerTestSlots {
    /// How many tests may drive a server at once (`PGLOCKS_TEST_SLOTS` overrides).
    public static let count: Int = {
        if let text = ProcessInfo.processInfo.environment["PGLOCKS_TEST_SLOTS"], let value = Int(text), value > 0 { return value }
        return 8
    }()

    @TaskLocal static var holding = false
    private static let slots = AsyncSlots(count)

    /// Runs `body` while holding one slot, waiting for a free one first.
    public static func withSlot<Result: Sendable>(
        _ body: @Sendable () async throws -> Result
    ) async throws -> Result {
        if holding { return try await body() }
        try await slots.acquire()
        defer { slots.release() }
        return try await $holding.withValue(true) { try await body() }
    }
}

/// A counting semaphore for tasks: `acquire()` suspends (cancellably) until a slot is free.
final class AsyncSlots: Sendable {
    private struct State {
        var free: Int
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var nextID: UInt64 = 0
    }
    private let state: Mutex<State>

    init(_ count: Int) { state = Mutex(State(free: count)) }

    func acquire() async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.free > 0 {
                        state.free -= 1
                        return true
                    }
                    state.waiters.append((id, continuation))
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            if state.waiters.isEmpty {
                state.free += 1
                return nil
            }
            return state.waiters.removeFirst().continuation
        }
        next?.resume()
    }
}

/// Holds one ``ServerTestSlots`` slot for each test it is applied to (or each test of a suite):
/// for tests that start servers of their own instead of calling `TestDatabase.withDatabase`.
public struct ServerSlotTrait: TestTrait, SuiteTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test,
        testCase: Test.Case?,
        performing function: @Sendable () async throws -> Void
    ) async throws {
        // A suite's own scope is entered once around all its tests: only test cases hold slots.
        guard testCase != nil || !test.isSuite else { return try await function() }
        try await ServerTestSlots.withSlot { try await function() }
    }
}

extension Trait where Self == ServerSlotTrait {
    /// Each test holds a server slot while it runs (see ``ServerTestSlots``).
    public static var serverSlot: Self { Self() }
}
