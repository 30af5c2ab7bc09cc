import Histogram

/// The time a benchmark side runs: a warm-up, then the measured part. Workers loop until
/// ``end`` and record the latencies of the runs that began at ``measureFrom`` or later.
struct BenchSpan: Sendable {
    let clock = ContinuousClock()
    let measureFrom: ContinuousClock.Instant
    let end: ContinuousClock.Instant
    /// Samples the resident size at ``measureFrom`` and at the end, when asked for.
    let residentWindow: ResidentWindow?

    /// A span starting now; with `residentGrowth`, one whose resident-size growth is sampled.
    init(warmup: Duration, duration: Duration, residentGrowth: Bool = false) {
        measureFrom = clock.now + warmup
        end = measureFrom + duration
        residentWindow = residentGrowth ? ResidentWindow(startingAt: measureFrom) : nil
    }

    /// Runs `operation` back to back until the end of the span, and returns the latencies of
    /// the measured runs; `operation` is told whether its run is measured.
    func loop(_ operation: (_ measured: Bool) async throws -> Void) async rethrows -> Histogram<UInt64> {
        var histogram = LatencyStats.emptyHistogram()
        while true {
            let began = clock.now
            if began >= end { break }
            let measured = began >= measureFrom
            try await operation(measured)
            if measured { histogram.recordMicros(since: began, clock: clock) }
        }
        return histogram
    }
}

extension Histogram<UInt64> {
    /// Records the time from `began` to `now` (the clock's now by default), in microseconds, at least 1.
    mutating func recordMicros(since began: ContinuousClock.Instant, clock: ContinuousClock, now: ContinuousClock.Instant? = nil) {
        let elapsed = (now ?? clock.now) - began
        let micros = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        _ = record(UInt64(Swift.max(micros, 1)))
    }

    /// The sum of `histograms`.
    static func sum(_ histograms: some Sequence<Histogram<UInt64>>) -> Histogram<UInt64> {
        var total = LatencyStats.emptyHistogram()
        for histogram in histograms { total.add(histogram) }
        return total
    }
}
