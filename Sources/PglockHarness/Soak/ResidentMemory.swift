import Foundation
import PostgresLocks
import PostgresNIO
import Synchronization

/// The resident size of this process, read from `/proc/self/statm` (Linux); nil elsewhere.
package func residentBytes() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
    let fields = text.split(separator: " ")
    guard fields.count >= 2, let pages = Int(fields[1]) else { return nil }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// Bytes as MiB.
package func mebibytes(_ bytes: Int) -> Double { Double(bytes) / 1_048_576 }

/// How `pglock`'s pooled scenarios configure their `PostgresClient`.
package enum PoolChoice: String, Codable, CaseIterable, Sendable {
    /// The library's recommendation: 0 to `size` connections, no keep-alive queries, a 2 s idle
    /// timeout (`ConnectionSettings.makeClientConfiguration(poolSize:)`).
    case recommended
    /// A fixed pool (`minimumConnections = maximumConnections`), no keep-alive queries: flat
    /// memory, but PostgresNIO 1.33 stops the process when the server restarts under it.
    case fixed
    /// PostgresNIO's defaults (0 to `maximumConnections` connections, 60 s idle timeout, a
    /// keep-alive query every 30 s), with the same maximum: to measure what they cost.
    case driverDefaults = "driver-defaults"
    /// A fixed pool with PostgresNIO's keep-alive queries left on (one of the two causes alone).
    case fixedWithKeepAlive = "fixed-keep-alive"
    /// PostgresNIO's lazy pool (0 to `size` connections, 60 s idle timeout) without keep-alive
    /// queries (the other cause alone).
    case lazyWithoutKeepAlive = "lazy-no-keep-alive"

    /// A client configuration for `settings` with at most `size` connections.
    package func configuration(settings: ConnectionSettings, size: Int) throws -> PostgresClient.Configuration {
        var configuration = try settings.makeClientConfiguration(poolSize: size)
        switch self {
        case .recommended:
            break
        case .fixed:
            configuration.options.minimumConnections = size
        case .driverDefaults:
            var options = PostgresClient.Configuration.Options()
            options.connectTimeout = configuration.options.connectTimeout
            options.additionalStartupParameters = configuration.options.additionalStartupParameters
            options.maximumConnections = size
            configuration.options = options
        case .fixedWithKeepAlive:
            configuration.options.minimumConnections = size
            configuration.options.keepAliveBehavior = .init()
        case .lazyWithoutKeepAlive:
            configuration.options.connectionIdleTimeout = .seconds(60)
        }
        return configuration
    }

    /// One line saying what the pool is.
    package func describe(size: Int) -> String {
        switch self {
        case .recommended: return "recommended pool: 0…\(size) connections, 2 s idle timeout, no keep-alive queries"
        case .fixed: return "fixed pool of \(size) connections, no keep-alive queries"
        case .driverDefaults: return "PostgresNIO's default pool: 0…\(size) connections, 60 s idle timeout, keep-alive every 30 s"
        case .fixedWithKeepAlive: return "fixed pool of \(size) connections, keep-alive every 30 s"
        case .lazyWithoutKeepAlive: return "lazy pool of 0…\(size) connections, 60 s idle timeout, no keep-alive queries"
        }
    }
}

/// Samples the resident size every `interval` until stopped: the peak and a series of samples
/// (thinned to at most `keep` by dropping every other one when full).
package final class ResidentSampler: Sendable {
    package struct Sample: Codable, Sendable {
        /// Seconds since the sampler started.
        package var seconds: Double
        /// Operations done so far (as reported by the `progress` closure).
        package var operations: Int
        /// Resident size, MiB.
        package var residentMiB: Double
    }

    private struct State {
        var samples: [Sample] = []
        var every = 1
        var taken = 0
        var peak = 0
    }

    private let state = Mutex(State())
    private let keep: Int

    package init(keep: Int = 240) {
        self.keep = keep
    }

    /// Takes one sample now.
    package func sample(seconds: Double, operations: Int) {
        guard let bytes = residentBytes() else { return }
        state.withLock { state in
            state.peak = max(state.peak, bytes)
            defer { state.taken += 1 }
            guard state.taken % state.every == 0 else { return }
            state.samples.append(Sample(seconds: seconds, operations: operations, residentMiB: (mebibytes(bytes) * 100).rounded() / 100))
            if state.samples.count >= keep {
                state.samples = state.samples.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
                state.every *= 2
            }
        }
    }

    /// The largest resident size seen, in bytes.
    package var peakBytes: Int { state.withLock { $0.peak } }
    /// The kept samples, oldest first.
    package var samples: [Sample] { state.withLock { $0.samples } }

    /// Samples every `interval` while `body` runs, reading the operation count from `operations`.
    package func around<Result: Sendable>(
        every interval: Duration,
        operations: @escaping @Sendable () -> Int,
        _ body: @Sendable () async throws -> Result
    ) async throws -> Result {
        let started = ContinuousClock.now
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    self.sample(seconds: seconds(ContinuousClock.now - started), operations: operations())
                    try? await Task.sleep(for: interval)
                }
            }
            defer { group.cancelAll() }
            let result = try await body()
            sample(seconds: seconds(ContinuousClock.now - started), operations: operations())
            return result
        }
    }
}
