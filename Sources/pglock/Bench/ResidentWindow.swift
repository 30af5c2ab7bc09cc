import PglockHarness

/// The resident size at the start of a measured window (taken by a task at that instant) and
/// at its end: how much the process grew per operation while measuring.
final class ResidentWindow: Sendable {
    private let startBytes = SoakBox<Int?>(nil)
    private let marker: Task<Void, Never>

    /// A window whose start is sampled at `start` (now, if that has passed).
    init(startingAt start: ContinuousClock.Instant) {
        let startBytes = self.startBytes
        marker = Task {
            try? await Task.sleep(until: start, clock: .continuous)
            let bytes = residentBytes()
            startBytes.withLock { $0 = bytes }
        }
    }

    /// Ends the window: (resident size now − at the start) / `operations`, in bytes; nil if the
    /// start was never sampled or there were no operations.
    func end(operations: UInt64) async -> Double? {
        await marker.value
        guard let start = startBytes.withLock({ $0 }), let end = residentBytes(), operations > 0 else { return nil }
        return Double(end - start) / Double(operations)
    }
}

extension LatencyStats {
    /// The same figures with the window's resident growth per operation recorded.
    func with(residentGrowth window: ResidentWindow) async -> LatencyStats {
        var copy = self
        copy.residentGrowthBytesPerOperation = await window.end(operations: operations)
        return copy
    }
}
