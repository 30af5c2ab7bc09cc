import Histogram
import PglockHarness

/// Throughput and latency percentiles of one benchmark side, from an HdrHistogram in microseconds.
struct LatencyStats: Codable, Sendable {
    var operations: UInt64
    var seconds, opsPerSecond: Double
    /// Latency percentiles: median, 90th, 99th and 99.9th.
    var p50Micros, p90Micros, p99Micros, p999Micros: UInt64
    /// How much the resident size grew per operation over the measured window, in bytes (nil
    /// where not measured, as for pgbench). Near 0 for a client that keeps nothing per call.
    var residentGrowthBytesPerOperation: Double?
    /// The latencies these figures come from (not encoded), for ``combining(_:)``.
    var histogram: Histogram<UInt64>?

    private enum CodingKeys: String, CodingKey {
        case operations, seconds, opsPerSecond, p50Micros, p90Micros, p99Micros, p999Micros, residentGrowthBytesPerOperation
    }

    init(histogram: Histogram<UInt64>, seconds: Double) {
        self.histogram = histogram
        operations = histogram.totalCount
        self.seconds = seconds
        opsPerSecond = seconds > 0 ? Double(histogram.totalCount) / seconds : 0
        p50Micros = histogram.valueAtPercentile(50)
        p90Micros = histogram.valueAtPercentile(90)
        p99Micros = histogram.valueAtPercentile(99)
        p999Micros = histogram.valueAtPercentile(99.9)
    }

    /// One side measured in several rounds (interleaved with the other sides, so that the
    /// machine's drift falls on every side alike), as one: the latencies of all rounds
    /// together over their summed time; the resident growth is the rounds' mean.
    static func combining(_ rounds: [LatencyStats]) -> LatencyStats {
        var combined = LatencyStats(histogram: Histogram.sum(rounds.compactMap(\.histogram)), seconds: rounds.reduce(0) { $0 + $1.seconds })
        let growths = rounds.compactMap(\.residentGrowthBytesPerOperation)
        combined.residentGrowthBytesPerOperation = growths.isEmpty ? nil : growths.reduce(0, +) / Double(growths.count)
        return combined
    }

    static func emptyHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    }

    var summary: String {
        var text = "\(Int(opsPerSecond.rounded())) ops/s, p50 \(p50Micros) µs, p90 \(p90Micros) µs, p99 \(p99Micros) µs, p99.9 \(p999Micros) µs (\(operations) ops in \(String(format: "%.1f", seconds)) s)"
        if let growth = residentGrowthBytesPerOperation {
            text += String(format: "; memory growth %.0f bytes/op", growth)
        }
        return text
    }
}
