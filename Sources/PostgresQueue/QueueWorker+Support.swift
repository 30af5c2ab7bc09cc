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

/// The jobs a worker runs right now, with a way to tell each one its lease is gone.
final class InFlightJobs: Sendable {
    private struct Entry {
        var lease: JobLease
        var lost: AsyncStream<Void>.Continuation
    }

    private let entries = Mutex<[Int64: Entry]>([:])

    /// Registers a job; the returned stream yields if its lease is lost.
    func add(_ lease: JobLease) -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        entries.withLock { $0[lease.id] = Entry(lease: lease, lost: continuation) }
        return stream
    }

    func remove(_ id: Int64) {
        let entry = entries.withLock { $0.removeValue(forKey: id) }
        entry?.lost.finish()
    }

    func markLost(_ ids: [Int64]) {
        let lost = entries.withLock { entries in ids.compactMap { entries[$0]?.lost } }
        for continuation in lost { continuation.yield(); continuation.finish() }
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

/// A flag set once.
final class StopFlag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
