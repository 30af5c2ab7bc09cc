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
        var cancel: (@Sendable () -> Void)?
        var lost = false
    }

    private let entries = Mutex<[Int64: Entry]>([:])

    func add(_ lease: JobLease) {
        entries.withLock { $0[lease.id] = Entry(lease: lease) }
    }

    /// Sets how to stop the job's handler; runs it at once if the lease was already lost.
    func setCancel(_ id: Int64, _ cancel: @escaping @Sendable () -> Void) {
        let lostAlready = entries.withLock { entries -> Bool in
            entries[id]?.cancel = cancel
            return entries[id]?.lost ?? false
        }
        if lostAlready { cancel() }
    }

    /// Removes the job; returns whether its lease was lost while it ran.
    @discardableResult
    func remove(_ id: Int64) -> Bool {
        entries.withLock { $0.removeValue(forKey: id)?.lost ?? false }
    }

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
    var count: Int { entries.withLock { $0.count } }
}

/// Leases waiting to be written in one statement (completions, give-backs).
final class LeaseBuffer: Sendable {
    private let buffer = Mutex<[JobLease]>([])
    let wake = WakeSignal()

    func add(_ lease: JobLease) {
        buffer.withLock { $0.append(lease) }
        wake.signal()
    }

    func putBack(_ leases: [JobLease]) {
        buffer.withLock { $0.insert(contentsOf: leases, at: 0) }
    }

    func takeAll() -> [JobLease] {
        buffer.withLock { buffer in
            defer { buffer.removeAll(keepingCapacity: true) }
            return buffer
        }
    }

    var isEmpty: Bool { buffer.withLock { $0.isEmpty } }
}
