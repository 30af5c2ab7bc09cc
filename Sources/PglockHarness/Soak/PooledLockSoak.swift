import Foundation
import Logging
import PostgresLocks
import PostgresNIO
import Synchronization

/// `pglock soak --pooled-locks N`: N `PostgresClient.withAdvisoryLock` calls through the pool,
/// the resident size sampled while they run, and a verdict on whether it stayed within a bound.
///
/// The pool is the library's main entry point: a client that keeps memory per call would grow
/// with the work it does. The run warms up first (pool connections opened, statements prepared,
/// allocator arenas filled), takes the baseline, then makes the calls; it passes when the peak
/// resident size stays within ``Configuration/boundMiB`` of the baseline and every call succeeded.
package struct PooledLockSoak: Sendable {
    package struct Configuration: Sendable {
        /// Calls measured after the warm-up.
        package var calls = 1_000_000
        /// Calls made before the baseline is taken.
        package var warmupCalls = 20_000
        /// Tasks making calls at once.
        package var tasks = 8
        /// The pool's size.
        package var poolSize = ConnectionSettings.defaultPoolSize
        /// The pool's configuration.
        package var pool = PoolChoice.recommended
        /// How far above the baseline the resident size may go, MiB.
        ///
        /// 16 MiB: a fixed pool keeps nothing per call, so what moves the resident size is the
        /// allocator (measured: peak 0.4 MiB above the baseline over 1,000,000 calls in a release
        /// build, 0.1 MiB over 30,000 in a debug build). 16 MiB over 1,000,000 calls is 17 bytes
        /// per call: anything that keeps even a small object per call for the whole run breaks
        /// it. PostgresNIO's default pool keeps about 1.3–1.5 KB per call for 30–90 s and breaks
        /// it within about 12,000 calls (it grew 31 MiB during a 20,000-call warm-up).
        package var boundMiB = 16.0
        /// Distinct keys the calls pick from at random.
        package var keys: Int64 = 1_000_000
        /// How often the resident size is sampled.
        package var sampleEvery: Duration = .milliseconds(250)
        /// After the calls, stay idle this long and sample again (to see what a pool's timers
        /// give back once their deadlines pass); zero for none.
        package var linger: Duration = .zero
        /// Receives progress lines.
        package var progress: (@Sendable (String) -> Void)?

        /// The defaults above.
        package init() {}
    }

    package struct Report: Codable, Sendable {
        package var calls: Int
        package var warmupCalls: Int
        package var tasks: Int
        package var pool: String
        package var poolSize: Int
        /// The configuration's `memoryGrowthWarning` (nil for a pool that does not grow).
        package var memoryGrowthWarning: String?
        package var seconds: Double
        package var callsPerSecond: Double
        package var failedCalls: Int
        /// Resident size when the client was created (before any call), MiB.
        package var startMiB: Double
        /// After the warm-up: what the bound is measured from.
        package var baselineMiB: Double
        package var peakMiB: Double
        package var endMiB: Double
        /// After ``Configuration/linger`` idle, if asked for.
        package var afterLingerMiB: Double?
        /// (end − baseline) / calls.
        package var growthBytesPerCall: Double
        package var boundMiB: Double
        package var passed: Bool
        package var samples: [ResidentSampler.Sample]

        package var summary: String {
            var lines = [
                "pooled locks: \(calls) withAdvisoryLock calls (+\(warmupCalls) warm-up) by \(tasks) tasks; pool: \(pool)",
                String(format: "  %.1f s, %.0f calls/s, %d failed", seconds, callsPerSecond, failedCalls),
                String(format: "  resident size: start %.1f MiB, after warm-up %.1f MiB, peak %.1f MiB, end %.1f MiB (%.1f bytes/call)", startMiB, baselineMiB, peakMiB, endMiB, growthBytesPerCall),
            ]
            if let afterLingerMiB { lines.append(String(format: "  after lingering idle: %.1f MiB", afterLingerMiB)) }
            lines.append(String(format: "  bound: peak ≤ baseline + %.0f MiB (%.1f MiB): %@", boundMiB, baselineMiB + boundMiB, passed ? "PASS" : "FAIL"))
            if let memoryGrowthWarning { lines.append("  configuration warning: \(memoryGrowthWarning)") }
            return lines.joined(separator: "\n")
        }
    }

    package let settings: ConnectionSettings
    package let configuration: Configuration

    /// A soak of `configuration` against the database of `settings`.
    package init(settings: ConnectionSettings, configuration: Configuration) {
        self.settings = settings
        self.configuration = configuration
    }

    package func run(logger: Logger) async throws -> Report {
        let configuration = self.configuration
        guard configuration.calls >= 1, configuration.warmupCalls >= 0, configuration.tasks >= 1, configuration.poolSize >= 1,
              configuration.boundMiB > 0, configuration.keys >= 1 else {
            throw PostgresLocksError(code: .invalidArgument, message: "pooled-lock soak: calls, tasks, pool size, keys and bound must be positive")
        }
        let clientConfiguration = try configuration.pool.configuration(settings: settings, size: configuration.poolSize)
        var background = Logger(label: "pglock.soak.pool")
        background.logLevel = .error
        let client = PostgresClient(configuration: clientConfiguration, backgroundLogger: background)
        let start = residentBytes() ?? 0
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }

            configuration.progress?("warm-up: \(configuration.warmupCalls) calls")
            let failed = SharedCount()
            _ = try await makeCalls(configuration.warmupCalls, client: client, failed: failed, done: SharedCount(), logger: logger)
            let baseline = residentBytes() ?? 0

            configuration.progress?("measuring: \(configuration.calls) calls by \(configuration.tasks) tasks")
            let sampler = ResidentSampler()
            let done = SharedCount()
            let began = ContinuousClock.now
            try await sampler.around(every: configuration.sampleEvery, operations: { done.value }) {
                try await makeCalls(configuration.calls, client: client, failed: failed, done: done, logger: logger, progress: configuration.progress)
            }
            let elapsed = seconds(ContinuousClock.now - began)
            let end = residentBytes() ?? 0
            var afterLinger: Double?
            if configuration.linger > .zero {
                configuration.progress?("lingering idle for \(format(configuration.linger))")
                try await Task.sleep(for: configuration.linger)
                afterLinger = residentBytes().map(mebibytes)
            }
            let peak = max(sampler.peakBytes, end)
            let failedCalls = failed.value
            return Report(
                calls: configuration.calls, warmupCalls: configuration.warmupCalls, tasks: configuration.tasks,
                pool: configuration.pool.describe(size: configuration.poolSize), poolSize: configuration.poolSize,
                memoryGrowthWarning: clientConfiguration.memoryGrowthWarning,
                seconds: elapsed, callsPerSecond: Double(configuration.calls) / max(elapsed, 0.001), failedCalls: failedCalls,
                startMiB: mebibytes(start), baselineMiB: mebibytes(baseline), peakMiB: mebibytes(peak), endMiB: mebibytes(end),
                afterLingerMiB: afterLinger,
                growthBytesPerCall: Double(end - baseline) / Double(configuration.calls),
                boundMiB: configuration.boundMiB,
                passed: failedCalls == 0 && mebibytes(peak - baseline) <= configuration.boundMiB,
                samples: sampler.samples
            )
        }
    }

    /// `count` calls shared by the tasks; returns when all are made.
    private func makeCalls(
        _ count: Int, client: PostgresClient, failed: SharedCount, done: SharedCount, logger: Logger,
        progress: (@Sendable (String) -> Void)? = nil
    ) async throws {
        guard count > 0 else { return }
        let next = SharedCount()
        let keys = configuration.keys
        let step = max(count / 10, 1)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<configuration.tasks {
                group.addTask {
                    var random = SystemRandomNumberGenerator()
                    while next.increment() <= count {
                        do {
                            try await client.withAdvisoryLock(.int64(Int64.random(in: 1...keys, using: &random)), logger: logger) { _ in }
                        } catch {
                            if failed.increment() <= 3 {
                                logger.error("pooled lock call failed", metadata: ["error": .error(error)])
                            }
                        }
                        let finished = done.increment()
                        if let progress, finished % step == 0 {
                            progress("\(finished) calls, resident \(String(format: "%.1f", mebibytes(residentBytes() ?? 0))) MiB")
                        }
                    }
                }
            }
        }
    }
}

/// A count shared by tasks.
package final class SharedCount: Sendable {
    private let atomic = Atomic<Int>(0)
    /// Adds one and returns the new count.
    package func increment() -> Int { atomic.add(1, ordering: .relaxed).newValue }
    package var value: Int { atomic.load(ordering: .relaxed) }
}
