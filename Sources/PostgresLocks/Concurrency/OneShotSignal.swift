import Synchronization

/// An event that fires once and stays fired, which many tasks can wait for (a stop request,
/// a connection's close). Waiting ends when the signal fires or the waiting task is cancelled.
final class OneShotSignal: Sendable {
    private enum Waiter {
        case waiting(CheckedContinuation<Void, Never>)
        case cancelled
    }

    private struct State {
        var fired = false
        var nextID: UInt64 = 0
        var waiters: [UInt64: Waiter] = [:]
    }

    private let state = Mutex(State())

    init() {}

    /// Whether the signal has fired.
    var isFired: Bool { state.withLock { $0.fired } }

    /// Fires the signal (again is harmless) and wakes every waiter.
    func fire() {
        let continuations = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.fired else { return [] }
            state.fired = true
            defer { state.waiters.removeAll() }
            return state.waiters.values.compactMap { waiter in
                if case .waiting(let continuation) = waiter { return continuation }
                return nil
            }
        }
        for continuation in continuations { continuation.resume() }
    }

    /// Returns once the signal has fired, or when the task is cancelled.
    func wait() async {
        let id = state.withLock { state -> UInt64 in
            defer { state.nextID &+= 1 }
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.fired { return true }
                    if case .cancelled = state.waiters[id] {
                        state.waiters[id] = nil
                        return true
                    }
                    state.waiters[id] = .waiting(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
                switch state.waiters[id] {
                case .waiting(let continuation):
                    state.waiters[id] = nil
                    return continuation
                case .cancelled:
                    return nil
                case nil:
                    // Cancelled before the continuation was registered: leave a mark for it.
                    if !state.fired { state.waiters[id] = .cancelled }
                    return nil
                }
            }
            continuation?.resume()
        }
    }

    /// Waits until one of `signals` fires or `duration` passes; returns the index of a fired
    /// signal, or `nil` on timeout.
    static func firstFired(of signals: [OneShotSignal], within duration: Duration) async -> Int? {
        if let index = signals.firstIndex(where: \.isFired) { return index }
        return await withTaskGroup(of: Int?.self) { group in
            for (index, signal) in signals.enumerated() {
                group.addTask {
                    await signal.wait()
                    return signal.isFired ? index : nil
                }
            }
            group.addTask {
                try? await Task.sleep(for: duration)
                return nil
            }
            _ = await group.next()
            group.cancelAll()
            return signals.firstIndex(where: \.isFired)
        }
    }
}
