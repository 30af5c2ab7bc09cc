import PostgresLocks
import Synchronization

extension SetOnceFlag {
    /// Sleeps `duration` in short slices; returns false as soon as `flag` is set (or the task is
    /// cancelled), true if the whole duration passed.
    package static func sleep(_ duration: Duration, unless flag: SetOnceFlag) async -> Bool {
        let deadline = ContinuousClock.now + duration
        while !flag.isSet && !Task.isCancelled {
            let left = deadline - ContinuousClock.now
            if left <= .zero { return true }
            try? await Task.sleep(for: min(left, .milliseconds(50)))
        }
        return false
    }
}

/// A random duration between `low` and `high`.
package func randomDuration(_ low: Duration, _ high: Duration) -> Duration {
    let lowNanos = low.components.seconds * 1_000_000_000 + low.components.attoseconds / 1_000_000_000
    let highNanos = high.components.seconds * 1_000_000_000 + high.components.attoseconds / 1_000_000_000
    return .nanoseconds(Int64.random(in: lowNanos...max(lowNanos, highNanos)))
}

extension Duration {
    /// Whole milliseconds.
    package var soakMilliseconds: Int {
        Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000)
    }
}

/// The task's value, or nil if it has not finished within `limit` (the task is then left to
/// finish on its own: a hung call must not hang the run).
package func awaitWithin<T: Sendable>(_ limit: Duration, _ task: Task<T, Never>) async -> T? {
    let once = SoakBox<CheckedContinuation<T?, Never>?>(nil)
    return await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
        once.withLock { $0 = continuation }
        let timer = Task {
            try? await Task.sleep(for: limit)
            once.withLock { $0.take() }?.resume(returning: nil)
        }
        Task {
            let value = await task.value
            // Take the continuation before stopping the timer: a cancelled timer wakes at once
            // and would otherwise race this task to it.
            let pending = once.withLock { $0.take() }
            timer.cancel()
            pending?.resume(returning: value)
        }
    }
}

/// A value behind a lock, shareable with escaping closures.
package final class SoakBox<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    package init(_ value: Value) { mutex = Mutex(value) }
    package func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
