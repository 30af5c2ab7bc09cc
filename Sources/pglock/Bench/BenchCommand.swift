import ArgumentParser
import EphemeralPostgres
import Foundation
import Histogram
import Logging
import PostgresLocks
import PostgresNIO

/// `pglock bench`: measures the library against `pgbench` running the same SQL in the same run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure a scenario against pgbench running the same SQL on the same server, in the same run.",
        discussion: "Scenarios: lock (BEGIN; exclusive transaction lock on a random key; COMMIT)."
    )

    enum Scenario: String, ExpressibleByArgument, CaseIterable {
        case lock
    }

    @Argument(help: "The scenario: \(Scenario.allCases.map(\.rawValue).joined(separator: ", ")).")
    var scenario: Scenario = .lock

    @Option(help: "Concurrent workers (one connection each).")
    var concurrency = 8

    @Option(help: "Measured time per side (e.g. 10s).")
    var duration = "10s"

    @Option(help: "Warm-up time before measuring (e.g. 2s).")
    var warmup = "2s"

    @Option(help: "How many distinct keys to pick from at random.")
    var keys = 1_000_000

    @Flag(help: "Skip the pgbench side.")
    var noPgbench = false

    @Flag(help: "Print the results as JSON.")
    var json = false

    @OptionGroup var database: DatabaseOptions

    struct Report: Codable {
        var scenario: String
        var concurrency: Int
        var ours: LatencyStats
        var oursCPUMicrosPerOperation: Double
        var pgbench: LatencyStats?
        var ratio: Double?
    }

    func validate() throws {
        guard (1...512).contains(concurrency) else { throw ValidationError("--concurrency must be from 1 to 512") }
        guard keys >= 1 else { throw ValidationError("--keys must be at least 1") }
    }

    func run() async throws {
        let measured = try parseDuration(duration)
        let warmupDuration = try parseDuration(warmup)
        let logger = makeLogger("pglock.bench")
        let progress = Progress(quiet: json)
        let concurrency = self.concurrency
        let keys = self.keys
        let noPgbench = self.noPgbench
        let report = try await database.withClient(maximumConnections: concurrency + 2, progress: progress, logger: logger) { client, target in
            progress.done("using \(target.description)")
            progress.step("ours: \(concurrency) workers, BEGIN; pg_advisory_xact_lock(random key of \(keys)); COMMIT, \(format(warmupDuration)) warm-up + \(format(measured))")
            let cpuBefore = processCPUMicros()
            let ours = try await Self.runLockScenario(client: client, concurrency: concurrency, keys: keys, warmup: warmupDuration, duration: measured, logger: logger)
            let cpuPerOperation = Double(processCPUMicros() - cpuBefore) / Double(max(ours.operations, 1))
            progress.done(ours.summary)
            var pgbench: LatencyStats?
            if !noPgbench {
                if let executable = PgbenchRunner.locate() {
                    let settings: ConnectionSettings
                    switch target {
                    case .existing(let existing): settings = existing
                    case .ephemeral(let server): settings = try ConnectionSettings(url: server.url())
                    }
                    progress.step("pgbench: the same SQL, \(concurrency) clients, prepared statements")
                    let seconds = max(1, Int(measured.components.seconds))
                    pgbench = try await PgbenchRunner(executable: executable, settings: settings).run(
                        script: "\\set k random(1, :keys)\nBEGIN;\nSELECT pg_advisory_xact_lock(:k);\nCOMMIT;\n",
                        clients: concurrency, threads: min(concurrency, 2), duration: seconds, variables: ["keys": "\(keys)"]
                    )
                    progress.done(pgbench!.summary)
                } else {
                    progress.done("pgbench not found (apt-get install postgresql-contrib): skipped")
                }
            }
            return Report(
                scenario: "lock", concurrency: concurrency, ours: ours, oursCPUMicrosPerOperation: cpuPerOperation,
                pgbench: pgbench, ratio: pgbench.map { ours.opsPerSecond / max($0.opsPerSecond, 1) }
            )
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print("scenario \(report.scenario), concurrency \(report.concurrency)")
            print("  ours:    \(report.ours.summary); client CPU \(String(format: "%.1f", report.oursCPUMicrosPerOperation)) µs/op")
            if let pgbench = report.pgbench { print("  pgbench: \(pgbench.summary)") }
            if let ratio = report.ratio { print("  ratio ours/pgbench: \(String(format: "%.2f", ratio))×") }
        }
    }

    /// Each worker loops: BEGIN; lock a random key; COMMIT (through `withAdvisoryLock`).
    static func runLockScenario(client: PostgresClient, concurrency: Int, keys: Int, warmup: Duration, duration: Duration, logger: Logger) async throws -> LatencyStats {
        let clock = ContinuousClock()
        let start = clock.now
        let measureFrom = start + warmup
        let end = measureFrom + duration
        let histogram = try await withThrowingTaskGroup(of: Histogram<UInt64>.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var histogram = LatencyStats.emptyHistogram()
                    var generator = SystemRandomNumberGenerator()
                    while true {
                        let began = clock.now
                        if began >= end { break }
                        let key = LockKey.int64(Int64.random(in: 1...Int64(keys), using: &generator))
                        try await client.withAdvisoryLock(key, logger: logger) { _ in }
                        if began >= measureFrom {
                            let elapsed = clock.now - began
                            let micros = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
                            _ = histogram.record(UInt64(max(micros, 1)))
                        }
                    }
                    return histogram
                }
            }
            var total = LatencyStats.emptyHistogram()
            for try await partial in group { total.add(partial) }
            return total
        }
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return LatencyStats(histogram: histogram, seconds: seconds)
    }
}

/// User + system CPU time of this process, in microseconds.
func processCPUMicros() -> Int64 {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Int64(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1_000_000 + Int64(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
}
