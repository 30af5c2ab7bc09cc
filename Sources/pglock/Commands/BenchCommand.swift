import ArgumentParser
import EphemeralPostgres
import Foundation
import Histogram
import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO
import PostgresQueue

/// `pglock bench`: measures the library against `pgbench` running the same SQL in the same run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure a scenario against pgbench running the same SQL on the same server, in the same run.",
        discussion: """
        Scenarios: lock (BEGIN; exclusive transaction lock on a random key; COMMIT); lock-session \
        (session lock and unlock); many-keys (BEGIN; --keys-per-transaction sorted keys; COMMIT); \
        counter (each gapless-counter strategy, or --strategy, over --scopes scopes); queue \
        (enqueue single and batch, drain, idle pickup latency); ingest (producers send batches of \
        keyed events with 20% duplicates through ExactlyOnceIngestion); commit-outcome (the \
        default retry policy against resolvingCommitOutcome, interleaved rounds).
        """
    )

    enum Scenario: String, ExpressibleByArgument, CaseIterable {
        case lock
        case lockSession = "lock-session"
        case manyKeys = "many-keys"
        case counter
        case queue
        case ingest
        case commitOutcome = "commit-outcome"
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

    @Option(help: ArgumentHelp(
        "How our side drives the lock loop: \(LockVariant.allCases.map(\.rawValue).joined(separator: ", ")).",
        discussion: "connection (default): the library's withAdvisoryLock on one dedicated connection per worker, as pgbench has; library: PostgresClient.withAdvisoryLock, leasing from the pool each time; raw-prepared / raw-futures: plain PostgresNIO without the library, statements prepared; raw-unnamed: the same futures with unnamed statements (parsed on every run)."
    ))
    var variant: LockVariant = .connection

    @Option(help: "Where worker tasks run: event-loop (each on its connection's event loop, EventLoopTaskExecutor) or global.")
    var executor: ExecutorChoice = .eventLoop

    enum ExecutorChoice: String, ExpressibleByArgument, Codable, Sendable {
        case eventLoop = "event-loop"
        case global
    }

    @Option(help: "counter: the strategy to measure (\(GaplessCounter.Strategy.allCases.map(\.rawValue).joined(separator: ", "))); all when omitted.")
    var strategy: GaplessCounter.Strategy?

    @Option(help: "counter: how many scopes to spread the numbers over.")
    var scopes = 1_000

    @Option(help: "queue: jobs per enqueue batch.")
    var enqueueBatchSize = 1_000

    @Option(help: "queue: drain workers (QueueWorker services in this process).")
    var workers = 2

    @Option(help: "queue: concurrent jobs per worker.")
    var workerConcurrency = 500

    @Flag(help: "queue: hold one snapshot open (a REPEATABLE READ transaction) for the whole drain, as a long report or backup would.")
    var holdSnapshot = false

    @Option(help: "queue: finished jobs to put in the history before measuring claim latency again (0: skip that step).")
    var history = 0

    @Option(help: "queue: jobs per call in the COPY vs unnest bulk-enqueue comparison (0: skip).")
    var bulkSize = 50_000

    @Flag(help: ArgumentHelp("queue: measure the drain only (for profiling).", visibility: .hidden))
    var drainOnly = false

    @Option(help: ArgumentHelp("queue: how often the drain workers run their maintenance (reaper, depth, retention), e.g. 5s (the workers' default).", visibility: .hidden))
    var reapInterval = "30s"

    @Option(help: "ingest: events per batch, a number or a range such as 100-1000.")
    var batchSize = "100-1000"

    @Option(help: ArgumentHelp(
        "The pool of the pooled scenarios (lock --variant library, lock-session, queue): recommended, fixed, driver-defaults, fixed-keep-alive or lazy-no-keep-alive.",
        discussion: "recommended (default): the library's configuration, ConnectionSettings.makeClientConfiguration(poolSize:): 0 to --pool-size connections, 2 s idle timeout, no keep-alive queries; fixed: minimum = maximum (flat, but stopped by PostgresNIO when the server restarts); driver-defaults: PostgresNIO's defaults (0 to --pool-size connections, 60 s idle timeout, keep-alive every 30 s), which keep memory per call. Memory growth per operation is reported either way."
    ))
    var pool: PoolChoice = .recommended

    @Option(help: "The pool size of the pooled scenarios (default: --concurrency + 2).")
    var poolSize: Int?

    @Flag(help: "Run the library's hot statements unnamed (StatementPreparation off), to measure what preparing them gives.")
    var noPreparedStatements = false

    @Flag(help: "Skip the driver-ceiling side (lock and counter-row: plain PostgresNIO, the same statements prepared).")
    var noDriverCeiling = false

    @Flag(help: "Skip the pgbench side.")
    var noPgbench = false

    @Flag(help: "Print the results as JSON.")
    var json = false

    @OptionGroup var database: DatabaseOptions

    /// One measured side.
    struct Side: Codable {
        var name: String
        var stats: LatencyStats
        var clientCPUMicrosPerOperation: Double?
    }

    struct Report: Codable {
        var scenario: String
        var concurrency: Int
        var variant: String
        var executor: String
        var ours: LatencyStats
        var oursCPUMicrosPerOperation: Double
        /// Plain PostgresNIO running the same statements: what the driver allows on this machine.
        var driverCeiling: LatencyStats?
        var driverCeilingCPUMicrosPerOperation: Double?
        var pgbench: LatencyStats?
        var ratio: Double?
        var ratioToDriverCeiling: Double?
        var peakMemoryMegabytes: Double = 0
        /// The pool of `ours`, when it goes through one (variant library).
        var pool: String?
    }

    func validate() throws {
        guard (1...512).contains(concurrency) else { throw ValidationError("--concurrency must be from 1 to 512") }
        guard keys >= 1 else { throw ValidationError("--keys must be at least 1") }
        guard scopes >= 1 else { throw ValidationError("--scopes must be at least 1") }
        guard (1...Transaction.maximumKeysPerCall).contains(keysPerTransaction) else { throw ValidationError("--keys-per-transaction must be from 1 to \(Transaction.maximumKeysPerCall)") }
        guard (1...JobQueue.maximumBatchSize).contains(enqueueBatchSize) else { throw ValidationError("--enqueue-batch-size must be from 1 to \(JobQueue.maximumBatchSize)") }
        guard (1...64).contains(workers), (1...10_000).contains(workerConcurrency) else { throw ValidationError("--workers must be 1…64 and --worker-concurrency 1…10000") }
        if let poolSize, !(1...1_000).contains(poolSize) { throw ValidationError("--pool-size must be from 1 to 1000") }
    }

    func run() async throws {
        if noPreparedStatements { BenchCommand.preparation = .disabled }
        switch scenario {
        case .ingest: try await runIngestBench()
        case .lock: try await runLock()
        case .lockSession, .manyKeys: try await runLockScenario()
        case .counter: try await runCounter()
        case .queue: try await runQueue()
        case .commitOutcome: try await runCommitOutcome()
        }
    }

    /// `commit-outcome`: the default retry policy against `resolvingCommitOutcome`, interleaved.
    func runCommitOutcome() async throws {
        let (measured, warmupDuration) = (try parseDuration(duration), try parseDuration(warmup))
        let logger = makeLogger("pglock.bench")
        let progress = Progress(quiet: json)
        let (concurrency, executor, keys, scopes) = (self.concurrency, self.executor, self.keys, self.scopes)
        let rows = try await database.withClient(maximumConnections: concurrency + 2, progress: progress, logger: logger) { client, target in
            progress.done("using \(target.description)")
            client.statementPreparation = Self.preparation
            let harness = BenchHarness(settings: try target.connectionSettings(), concurrency: concurrency, warmup: warmupDuration, duration: measured, executor: executor, logger: logger)
            return try await CommitOutcomeBench.run(harness: harness, client: client, rounds: 3, keys: keys, scopes: scopes, progress: progress)
        }
        if json { return try printJSON(rows) }
        CommitOutcomeBench.printReport(rows, concurrency: concurrency)
    }

    func runQueue() async throws {
        let measured = try parseDuration(duration)
        let warmupDuration = try parseDuration(warmup)
        let logger = makeLogger("pglock.bench")
        let progress = Progress(quiet: json)
        let (concurrency, executor, batchSize, workers, workerConcurrency, noPgbench, drainOnly) = (self.concurrency, self.executor, self.enqueueBatchSize, self.workers, self.workerConcurrency, self.noPgbench, self.drainOnly)
        let (pool, size) = (self.pool, self.poolSize ?? max(concurrency, workers * 4) + 4)
        let extras = QueueBench.Extras(holdSnapshot: holdSnapshot, history: history, bulkSize: bulkSize, reapInterval: try parseDuration(reapInterval))
        let report = try await database.withClient(maximumConnections: 2, progress: progress, logger: logger) { _, target in
            progress.done("using \(target.description)")
            let harness = BenchHarness(settings: try target.connectionSettings(), concurrency: concurrency, warmup: warmupDuration, duration: measured, executor: executor, logger: logger)
            let pgbench = noPgbench ? nil : PgbenchRunner.locate().map { PgbenchRunner(executable: $0, settings: harness.settings) }
            return try await Self.withPooledClient(settings: harness.settings, pool: pool, size: size, progress: progress) { client in
                var report = try await QueueBench.run(
                    harness: harness, client: client, batchSize: batchSize, workers: workers, workerConcurrency: workerConcurrency,
                    pgbench: pgbench, drainOnly: drainOnly, extras: extras, progress: progress
                )
                report.pool = pool.describe(size: size)
                return report
            }
        }
        if json { return try printJSON(report) }
        print("scenario queue")
        print("  enqueue, 1 job per call (\(concurrency) producers): \(report.enqueueSingle.summary)")
        print("  enqueue, batches of \(report.enqueueBatchSize): \(Int(report.enqueueBatchJobsPerSecond)) jobs/s; per batch p50 \(report.enqueueBatch.p50Micros) µs, p99 \(report.enqueueBatch.p99Micros) µs")
        print("  drain (\(report.drainWorkers) workers × \(report.drainConcurrency)): \(Int(report.drainJobsPerSecond)) jobs/s; client CPU \(String(format: "%.1f", report.drainClientCPUMicrosPerJob)) µs/job")
        if let rate = report.pgbenchDrainJobsPerSecond, let ratio = report.ratioToPgbench {
            print("  drain by pgbench, same claim + complete SQL (\(report.drainWorkers) clients): \(Int(rate)) jobs/s; ratio ours/pgbench \(String(format: "%.2f", ratio))×")
        }
        print("  pickup latency (idle queue): p50 \(report.pickup.p50Micros) µs, p90 \(report.pickup.p90Micros) µs, p99 \(report.pickup.p99Micros) µs")
        if let unnest = report.bulkUnnestJobsPerSecond, let copy = report.bulkCopyJobsPerSecond, let size = report.bulkSize {
            print("  bulk enqueue of \(size) per call: unnest \(Int(unnest)) jobs/s, COPY \(Int(copy)) jobs/s (\(String(format: "%.2f", copy / unnest))×)")
        }
        print("  drain dead tuples afterwards: \(report.drainDeadTuples.map(String.init) ?? "?")\(report.drainHeldSnapshot ? " (a snapshot was held open for the whole drain)" : "")")
        if let empty = report.claimEmptyHistory, let full = report.claimWithHistory, let count = report.historyJobs {
            print("  claim + give back, empty history: p50 \(empty.p50Micros) µs, p99 \(empty.p99Micros) µs; with \(count) finished jobs: p50 \(full.p50Micros) µs, p99 \(full.p99Micros) µs (p99 ratio \(String(format: "%.2f", Double(full.p99Micros) / Double(max(empty.p99Micros, 1))))×)")
        }
        print("  pool: \(report.pool ?? "?")")
        print("  memory growth: enqueue \(bytesPerOperation(report.enqueueSingle.residentGrowthBytesPerOperation)) per call, batch enqueue \(bytesPerOperation(report.enqueueBatch.residentGrowthBytesPerOperation)) per batch, drain \(bytesPerOperation(report.drainResidentGrowthBytesPerJob)) per job")
        print("  peak memory: \(String(format: "%.0f", peakMemoryMegabytes())) MiB")
    }

    static func secondsOf(_ duration: Duration) -> Double { seconds(duration) }

    func runCounter() async throws {
        let measured = try parseDuration(duration)
        let warmupDuration = try parseDuration(warmup)
        let logger = makeLogger("pglock.bench")
        let progress = Progress(quiet: json)
        let (concurrency, scopes, executor, noPgbench, noDriverCeiling) = (self.concurrency, self.scopes, self.executor, self.noPgbench, self.noDriverCeiling)
        let strategies = strategy.map { [$0] } ?? GaplessCounter.Strategy.allCases
        let rows = try await database.withClient(maximumConnections: concurrency + 2, progress: progress, logger: logger) { client, target in
            progress.done("using \(target.description)")
            client.statementPreparation = Self.preparation
            let settings = try target.connectionSettings()
            let harness = BenchHarness(settings: settings, concurrency: concurrency, warmup: warmupDuration, duration: measured, executor: executor, logger: logger)
            let pgbench = noPgbench ? nil : PgbenchRunner.locate().map { PgbenchRunner(executable: $0, settings: settings) }
            if !noPgbench && pgbench == nil { progress.done("pgbench not found (apt-get install postgresql-contrib): skipped") }
            return try await CounterBench.run(
                strategies: strategies, scopes: scopes, harness: harness, client: client, pgbench: pgbench,
                driverCeiling: !noDriverCeiling, progress: progress
            )
        }
        if json {
            try printJSON(rows)
        } else {
            print("scenario counter, concurrency \(concurrency), \(scopes) scopes; peak memory \(String(format: "%.0f", peakMemoryMegabytes())) MiB")
            for row in rows {
                print("  \(row.strategy):")
                print("    ours:    \(row.ours.summary); client CPU \(String(format: "%.1f", row.oursCPUMicrosPerOperation)) µs/op")
                if let ceiling = row.driverCeiling, let cpu = row.driverCeilingCPUMicrosPerOperation {
                    print("    driver ceiling: \(ceiling.summary); client CPU \(String(format: "%.1f", cpu)) µs/op")
                }
                if let pgbench = row.pgbench { print("    pgbench: \(pgbench.summary)") }
                if let ratio = row.ratio { print("    ratio ours/pgbench: \(String(format: "%.2f", ratio))×") }
                if let ratio = row.ratioToDriverCeiling { print("    ratio ours/driver ceiling: \(String(format: "%.2f", ratio))×") }
            }
        }
    }

    @Option(help: "many-keys: keys locked per transaction.")
    var keysPerTransaction = 10

    func runLockScenario() async throws {
        let measured = try parseDuration(duration)
        let warmupDuration = try parseDuration(warmup)
        let logger = makeLogger("pglock.bench")
        let progress = Progress(quiet: json)
        let (concurrency, keys, executor, noPgbench, scenario, perTransaction) = (self.concurrency, self.keys, self.executor, self.noPgbench, self.scenario, self.keysPerTransaction)
        let (pool, size) = (self.pool, self.poolSize ?? concurrency + 2)
        let report = try await database.withClient(maximumConnections: concurrency + 2, progress: progress, logger: logger) { client, target in
            progress.done("using \(target.description)")
            client.statementPreparation = Self.preparation
            let settings = try target.connectionSettings()
            let harness = BenchHarness(settings: settings, concurrency: concurrency, warmup: warmupDuration, duration: measured, executor: executor, logger: logger)
            let pgbench = noPgbench ? nil : PgbenchRunner.locate().map { PgbenchRunner(executable: $0, settings: settings) }
            if scenario == .lockSession {
                return try await Self.withPooledClient(settings: settings, pool: pool, size: size, progress: progress) { pooled in
                    var report = try await LockScenariosBench.lockSession(harness: harness, client: pooled, keys: keys, pgbench: pgbench, progress: progress)
                    report.pool = pool.describe(size: size)
                    return report
                }
            }
            return try await LockScenariosBench.manyKeys(harness: harness, client: client, keys: keys, perTransaction: perTransaction, pgbench: pgbench, progress: progress)
        }
        if json { return try printJSON(report) }
        print("scenario \(report.scenario), concurrency \(report.concurrency)\(report.pool.map { ", \($0)" } ?? "")")
        print("  ours:    \(report.ours.summary); client CPU \(String(format: "%.1f", report.oursCPUMicrosPerOperation)) µs/op; peak memory \(String(format: "%.0f", report.peakMemoryMegabytes)) MiB")
        if let pgbench = report.pgbench { print("  pgbench: \(pgbench.summary)") }
        if let ratio = report.ratio { print("  ratio ours/pgbench: \(String(format: "%.2f", ratio))×") }
    }

    func printJSON<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    func runLock() async throws {
        let measured = try parseDuration(duration)
        let warmupDuration = try parseDuration(warmup)
        let logger = makeLogger("pglock.bench")
        let progress = Progress(quiet: json)
        let concurrency = self.concurrency
        let keys = self.keys
        let noPgbench = self.noPgbench
        let noDriverCeiling = self.noDriverCeiling
        let variant = self.variant
        let executor = self.executor
        let (pool, size) = (self.pool, self.poolSize ?? concurrency + 2)
        let report = try await database.withClient(maximumConnections: concurrency + 2, progress: progress, logger: logger) { client, target in
            progress.done("using \(target.description)")
            client.statementPreparation = Self.preparation
            let settings = try target.connectionSettings()
            func measure(_ variant: LockVariant, executor: ExecutorChoice) async throws -> (LatencyStats, Double) {
                let cpuBefore = processCPUMicros()
                let stats: LatencyStats
                if variant == .library {
                    stats = try await Self.withPooledClient(settings: settings, pool: pool, size: size, progress: progress) { pooled in
                        try await Self.runLockScenario(client: pooled, concurrency: concurrency, keys: keys, warmup: warmupDuration, duration: measured, logger: logger)
                    }
                } else {
                    stats = try await Self.runDedicatedLockScenario(
                        variant: variant, executor: executor, settings: settings, client: client, concurrency: concurrency,
                        keys: keys, warmup: warmupDuration, duration: measured, logger: logger
                    )
                }
                // CPU covers warm-up too; operations are counted only while measuring, so scale
                // them to the whole run at the measured rate.
                let wholeRun = Double(stats.operations) * (seconds(warmupDuration) + seconds(measured)) / max(seconds(measured), 0.001)
                let cpu = Double(processCPUMicros() - cpuBefore) / max(wholeRun, 1)
                return (stats, cpu)
            }
            progress.step("ours (\(variant.rawValue), \(executor.rawValue)): \(concurrency) workers, BEGIN; pg_advisory_xact_lock(random key of \(keys)); COMMIT, \(format(warmupDuration)) warm-up + \(format(measured))")
            let (ours, oursCPU) = try await measure(variant, executor: executor)
            progress.done(ours.summary)
            var ceiling: (LatencyStats, Double)?
            if !noDriverCeiling && variant != .rawFutures {
                progress.step("driver ceiling: plain PostgresNIO futures on the event loop, the same prepared statements")
                ceiling = try await measure(.rawFutures, executor: .eventLoop)
                progress.done(ceiling!.0.summary)
            }
            var pgbench: LatencyStats?
            if !noPgbench {
                if let executable = PgbenchRunner.locate() {
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
                scenario: "lock", concurrency: concurrency, variant: variant.rawValue, executor: executor.rawValue,
                ours: ours, oursCPUMicrosPerOperation: oursCPU,
                driverCeiling: ceiling?.0, driverCeilingCPUMicrosPerOperation: ceiling?.1,
                pgbench: pgbench, ratio: pgbench.map { ours.opsPerSecond / max($0.opsPerSecond, 1) },
                ratioToDriverCeiling: ceiling.map { ours.opsPerSecond / max($0.0.opsPerSecond, 1) },
                peakMemoryMegabytes: peakMemoryMegabytes(),
                pool: variant == .library ? pool.describe(size: size) : nil
            )
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print("scenario \(report.scenario), concurrency \(report.concurrency), variant \(report.variant), executor \(report.executor)\(report.pool.map { ", \($0)" } ?? "")")
            print("  ours:           \(report.ours.summary); client CPU \(String(format: "%.1f", report.oursCPUMicrosPerOperation)) µs/op")
            if let ceiling = report.driverCeiling, let cpu = report.driverCeilingCPUMicrosPerOperation {
                print("  driver ceiling: \(ceiling.summary); client CPU \(String(format: "%.1f", cpu)) µs/op")
            }
            if let pgbench = report.pgbench { print("  pgbench:        \(pgbench.summary)") }
            if let ratio = report.ratio { print("  ratio ours/pgbench: \(String(format: "%.2f", ratio))×") }
            if let ratio = report.ratioToDriverCeiling { print("  ratio ours/driver ceiling: \(String(format: "%.2f", ratio))×") }
            print("  peak memory: \(String(format: "%.0f", report.peakMemoryMegabytes)) MiB")
        }
    }

    /// Each worker owns one connection and loops on it, in the given variant.
    static func runDedicatedLockScenario(
        variant: LockVariant, executor: ExecutorChoice, settings: ConnectionSettings, client: PostgresClient,
        concurrency: Int, keys: Int, warmup: Duration, duration: Duration, logger: Logger
    ) async throws -> LatencyStats {
        let histogram = try await withDedicatedConnections(settings: settings, count: concurrency, logger: logger) { connections in
            let clock = ContinuousClock()
            let measureFrom = clock.now + warmup
            let end = measureFrom + duration
            return try await withThrowingTaskGroup(of: Histogram<UInt64>.self) { group in
                for connection in connections {
                    group.addTask {
                        let work = {
                            try await runLockWorker(
                                variant: variant, connection: connection, keys: keys,
                                measureFrom: measureFrom, end: end, logger: logger
                            )
                        }
                        switch executor {
                        case .global: return try await work()
                        case .eventLoop:
                            return try await withTaskExecutorPreference(EventLoopTaskExecutor(connection.eventLoop)) { try await work() }
                        }
                    }
                }
                var total = LatencyStats.emptyHistogram()
                for try await partial in group { total.add(partial) }
                return total
            }
        }
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return LatencyStats(histogram: histogram, seconds: seconds)
    }

    /// Each worker loops: BEGIN; lock a random key; COMMIT (through `withAdvisoryLock`).
    static func runLockScenario(client: PostgresClient, concurrency: Int, keys: Int, warmup: Duration, duration: Duration, logger: Logger) async throws -> LatencyStats {
        let clock = ContinuousClock()
        let start = clock.now
        let measureFrom = start + warmup
        let end = measureFrom + duration
        let window = ResidentWindow(startingAt: measureFrom)
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
        return await LatencyStats(histogram: histogram, seconds: seconds).with(residentGrowth: window)
    }
}

/// "123 bytes" (or "n/a" when not measured).
func bytesPerOperation(_ value: Double?) -> String {
    value.map { String(format: "%.0f bytes", $0) } ?? "n/a"
}

/// User + system CPU time of this process, in microseconds.
func processCPUMicros() -> Int64 {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Int64(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1_000_000 + Int64(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
}
