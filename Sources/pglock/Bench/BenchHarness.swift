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
        try await measureLoops(residentGrowth: true) { connection, worker, span in
            var random = SystemRandomNumberGenerator()
            return try await span.loop { _ in try await operation(connection, worker, &random) }
        }
    }

    /// Like ``measure(_:)``, with each worker running its own loop over the span and returning
    /// its latencies; with `residentGrowth`, the resident size's growth per operation too.
    func measureLoops(
        residentGrowth: Bool,
        _ loop: @escaping @Sendable (_ connection: PostgresConnection, _ worker: Int, _ span: BenchSpan) async throws -> Histogram<UInt64>
    ) async throws -> (stats: LatencyStats, cpuMicrosPerOperation: Double) {
        try await measuring {
            let (histograms, span) = try await onWorkers(residentGrowth: residentGrowth, loop)
            return (Histogram.sum(histograms), span)
        }
    }

    /// Like ``measure(_:)`` through a pool: `concurrency` tasks (no dedicated connections, on
    /// the global executor) run `operation` in a loop.
    func measurePooled(
        _ operation: @escaping @Sendable (_ random: inout SystemRandomNumberGenerator) async throws -> Void
    ) async throws -> (stats: LatencyStats, cpuMicrosPerOperation: Double) {
        try await measuring {
            let span = BenchSpan(warmup: warmup, duration: duration, residentGrowth: true)
            let histograms = try await withThrowingTaskGroup(of: Histogram<UInt64>.self) { group in
                for _ in 0..<concurrency {
                    group.addTask {
                        var random = SystemRandomNumberGenerator()
                        return try await span.loop { _ in try await operation(&random) }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            return (Histogram.sum(histograms), span)
        }
    }

    /// Runs `worker` once per worker, each with a dedicated connection (and on that
    /// connection's event loop with `--executor event-loop`), over one span started once every
    /// connection is open; returns their results.
    func onWorkers<Result: Sendable>(
        residentGrowth: Bool = false,
        _ worker: @escaping @Sendable (_ connection: PostgresConnection, _ index: Int, _ span: BenchSpan) async throws -> Result
    ) async throws -> (results: [Result], span: BenchSpan) {
        let (warmup, duration, executor) = (self.warmup, self.duration, self.executor)
        return try await BenchCommand.withDedicatedConnections(settings: settings, count: concurrency, logger: logger) { connections in
            let span = BenchSpan(warmup: warmup, duration: duration, residentGrowth: residentGrowth)
            let results = try await withThrowingTaskGroup(of: Result.self) { group in
                for (index, connection) in connections.enumerated() {
                    group.addTask {
                        switch executor {
                        case .global: return try await worker(connection, index, span)
                        case .eventLoop:
                            return try await withTaskExecutorPreference(EventLoopTaskExecutor(connection.eventLoop)) { try await worker(connection, index, span) }
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            return (results, span)
        }
    }

    /// The stats of the histogram `run` returns (with the resident growth over its span, if
    /// sampled), and the client CPU per operation.
    private func measuring(
        _ run: () async throws -> (Histogram<UInt64>, BenchSpan)
    ) async throws -> (stats: LatencyStats, cpuMicrosPerOperation: Double) {
        let cpuBefore = processCPUMicros()
        let (histogram, span) = try await run()
        var stats = LatencyStats(histogram: histogram, seconds: seconds(duration))
        if let window = span.residentWindow { stats = await stats.with(residentGrowth: window) }
        let wholeRun = Double(stats.operations) * (seconds(warmup) + seconds(duration)) / max(seconds(duration), 0.001)
        return (stats, Double(processCPUMicros() - cpuBefore) / max(wholeRun, 1))
    }
}
