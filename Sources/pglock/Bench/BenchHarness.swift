import Histogram
import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO

/// Runs one operation in a loop on dedicated connections (one per worker, like pgbench's
/// clients), each worker on its connection's event loop, and measures it.
struct BenchHarness: Sendable {
    var settings: ConnectionSettings
    var concurrency: Int
    var warmup: Duration
    var duration: Duration
    var executor: BenchCommand.ExecutorChoice
    var logger: Logger

    /// Ops/s and latency of `operation` (what one worker does once), and the client CPU per
    /// operation (whole process, warm-up included, scaled to the measured rate).
    func measure(
        _ operation: @escaping @Sendable (_ connection: PostgresConnection, _ worker: Int, _ random: inout SystemRandomNumberGenerator) async throws -> Void
    ) async throws -> (stats: LatencyStats, cpuMicrosPerOperation: Double) {
        let cpuBefore = processCPUMicros()
        let warmup = self.warmup, duration = self.duration, executor = self.executor
        let window = SoakBox<ResidentWindow?>(nil)
        let histogram = try await BenchCommand.withDedicatedConnections(settings: settings, count: concurrency, logger: logger) { connections in
            let clock = ContinuousClock()
            let measureFrom = clock.now + warmup
            let end = measureFrom + duration
            window.withLock { $0 = ResidentWindow(startingAt: measureFrom) }
            return try await withThrowingTaskGroup(of: Histogram<UInt64>.self) { group in
                for (worker, connection) in connections.enumerated() {
                    group.addTask {
                        let loop = { () async throws -> Histogram<UInt64> in
                            var histogram = LatencyStats.emptyHistogram()
                            var random = SystemRandomNumberGenerator()
                            while true {
                                let began = clock.now
                                if began >= end { break }
                                try await operation(connection, worker, &random)
                                if began >= measureFrom { histogram.recordMicros(since: began, clock: clock) }
                            }
                            return histogram
                        }
                        switch executor {
                        case .global: return try await loop()
                        case .eventLoop: return try await withTaskExecutorPreference(EventLoopTaskExecutor(connection.eventLoop)) { try await loop() }
                        }
                    }
                }
                var total = LatencyStats.emptyHistogram()
                for try await partial in group { total.add(partial) }
                return total
            }
        }
        var stats = LatencyStats(histogram: histogram, seconds: seconds(duration))
        if let window = window.withLock({ $0 }) { stats = await stats.with(residentGrowth: window) }
        let wholeRun = Double(stats.operations) * (seconds(warmup) + seconds(duration)) / max(seconds(duration), 0.001)
        return (stats, Double(processCPUMicros() - cpuBefore) / max(wholeRun, 1))
    }
}
