import Synchronization

/// A wake-up for a loop: many signals before the loop looks collapse into one.
struct WakeSignal: Sendable {
    let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    func signal() { continuation.yield() }
    func finish() { continuation.finish() }
}

/// The jobs a worker runs right now, with a way to stop one whose lease is gone.
final class InFlightJobs: Sendable {
    private struct Entry {
        var lease: JobLease
        var kind: String
        /// The heartbeat stops extending the lease after this instant (the kind's maximum runtime).
        var extendUntil: ContinuousClock.Instant?
        var cancel: (@Sendable () -> Void)?
        var lost = false
    }

    private let entries = Mutex<[Int64: Entry]>([:])

    func add(_ lease: JobLease, kind: String, extendUntil: ContinuousClock.Instant?) {
        entries.withLock { $0[lease.id] = Entry(lease: lease, kind: kind, extendUntil: extendUntil) }
    }

    /// Whether the job is running here.
    func contains(_ id: Int64) -> Bool {
        entries.withLock { $0[id] != nil }
    }

    /// Running jobs per kind (for limits and the pglock display).
    var countsByKind: [String: Int] {
        entries.withLock { entries in entries.values.reduce(into: [:]) { $0[$1.kind, default: 0] += 1 } }
    }

    /// Sets how to stop the job's handler; runs it at once if the lease was already lost.
    func setCancel(_ id: Int64, _ cancel: @escaping @Sendable () -> Void) {
        let lostAlready = entries.withLock { entries -> Bool in
            entries[id]?.cancel = cancel
            return entries[id]?.lost ?? false
        }
        if lostAlready { cancel() }
    }

    /// Removes the job: its slot is free.
    func remove(_ id: Int64) {
        entries.withLock { _ = $0.removeValue(forKey: id) }
    }

    /// Whether the job's lease was lost while it ran (reclaimed, or the job cancelled).
    func isLost(_ id: Int64) -> Bool {
        entries.withLock { $0[id]?.lost ?? false }
    }

    /// Marks the jobs' leases lost and cancels their handlers.
    func markLost(_ ids: [Int64]) {
        let cancels = entries.withLock { entries in
            ids.compactMap { id -> (@Sendable () -> Void)? in
                entries[id]?.lost = true
                return entries[id]?.cancel
            }
        }
        for cancel in cancels { cancel() }
    }

    var leases: [JobLease] { entries.withLock { $0.values.map(\.lease) } }

    /// The leases the heartbeat extends at `now`: those within their kind's maximum runtime.
    func leasesToExtend(at now: ContinuousClock.Instant) -> [JobLease] {
        entries.withLock { entries in
            entries.values.compactMap { entry in
                if let until = entry.extendUntil, now >= until { return nil }
                return entry.lease
            }
        }
    }
    var count: Int { entries.withLock { $0.count } }
}

/// Leases waiting to be written in one statement (completions with their outputs, give-backs).
final class LeaseBuffer: Sendable {
    private struct Pending {
        var leases: [JobLease] = []
        var outputs: [String] = []
    }

    private let buffer = Mutex(Pending())
    let wake = WakeSignal()

    /// Adds a lease, with its output as JSON text (`""` for none).
    func add(_ lease: JobLease, output: String = "") {
        buffer.withLock { $0.leases.append(lease); $0.outputs.append(output) }
        wake.signal()
    }

    func putBack(_ leases: [JobLease], outputs: [String]) {
        buffer.withLock {
            $0.leases.insert(contentsOf: leases, at: 0)
            $0.outputs.insert(contentsOf: outputs, at: 0)
        }
    }

    func takeAll() -> (leases: [JobLease], outputs: [String]) {
        buffer.withLock { buffer in
            defer {
                buffer.leases.removeAll(keepingCapacity: true)
                buffer.outputs.removeAll(keepingCapacity: true)
            }
            return (buffer.leases, buffer.outputs)
        }
    }

    var isEmpty: Bool { buffer.withLock { $0.leases.isEmpty } }
}

/// The worker's copy of its queue's stored settings (see ``QueueControl``), refreshed when a
/// control message arrives and on every poll tick.
final class ControlState: Sendable {
    private let state: Mutex<QueueControl>

    init(queue: String) { state = Mutex(.unchanged(queue)) }

    var current: QueueControl { state.withLock { $0 } }

    /// Stores `control`; returns whether the queue went from paused to running.
    func update(_ control: QueueControl) -> Bool {
        state.withLock { state in
            defer { state = control }
            return state.paused && !control.paused
        }
    }
}

/// The place of the last job the worker's claim loop claimed (its ``ClaimCursor/position``),
/// shared with the maintenance loop, which counts the queue's depth from there.
final class ClaimPlace: Sendable {
    private let place = Mutex<ClaimCursor.Position?>(nil)

    var current: ClaimCursor.Position? { place.withLock { $0 } }

    func update(_ position: ClaimCursor.Position?) { place.withLock { $0 = position } }
}
