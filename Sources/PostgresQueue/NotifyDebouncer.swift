import Synchronization

/// Decides whether an enqueue sends a `NOTIFY`: at most one per queue per `interval` from this
/// process. Workers re-check a queue `interval` after a wake-up, so a job whose notification
/// was folded into an earlier one waits at most `interval` longer.
///
/// A pure decision over times given by the caller, so it is tested without a clock.
struct NotifyDebouncer: Sendable {
    var interval: Duration
    private var lastSent: [String: ContinuousClock.Instant] = [:]

    init(interval: Duration) {
        self.interval = interval
    }

    /// Whether to notify for `queue` at `now`; if so, records it.
    mutating func shouldNotify(queue: String, at now: ContinuousClock.Instant) -> Bool {
        if interval > .zero, let last = lastSent[queue], now - last < interval { return false }
        lastSent[queue] = now
        return true
    }
}

/// A ``NotifyDebouncer`` shared by the tasks of one process.
final class SharedNotifyDebouncer: Sendable {
    private let state: Mutex<NotifyDebouncer>

    init(interval: Duration) {
        state = Mutex(NotifyDebouncer(interval: interval))
    }

    func shouldNotify(queue: String) -> Bool {
        let now = ContinuousClock.now
        return state.withLock { $0.shouldNotify(queue: queue, at: now) }
    }
}
