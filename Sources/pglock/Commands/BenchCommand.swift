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
        default retry policy against resolvingCommitOutcome, interleaved rounds); hold (--holds session \
        locks held at once by one process through a SessionLockPool: acquire and release rates, \
        acquire p50/p99, and the server connections carrying them); web (the web console's pages \
        with --locks advisory locks held and --history completed jobs kept: server time per page).
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
        case hold
        case web
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

    @Option(help: "Where worker tasks run: event-loop (each on its connection's event loop, EventLoopTaskExecutor) or global.")
    var executor: ExecutorChoice = .eventLoop

    enum ExecutorChoice: String, ExpressibleByArgument, Codable, Sendable {
        case eventLoop = "event-loop"
        case global
    }

    @Option(help: "queue and web: for queue, finished jobs to put in the history before measuring claim latency again (0: skip that step); for web, completed jobs kept (0: 10,000,000).")
    var history = 0

    @Option(help: ArgumentHelp(
        "The pool of the pooled scenarios (lock --variant library, lock-session, queue): recommended, fixed, driver-defaults, fixed-keep-alive or lazy-no-keep-alive.",
        discussion: "recommended (default): the library's configuration, ConnectionSettings.makeClientConfiguration(poolSize:): 0 to --pool-size connections, 2 s idle timeout, no keep-alive queries; fixed: minimum = maximum (flat, but stopped by PostgresNIO when the server restarts); driver-defaults: PostgresNIO's defaults (0 to --pool-size connections, 60 s idle timeout, keep-alive every 30 s), which keep memory per call. Memory growth per operation is reported either way."
    ))
    var pool: PoolChoice = .recommended

    @Option(help: "The pool size of the pooled scenarios (default: --concurrency + 2).")
    var poolSize: Int?

    @Flag(help: "Run the library's hot statements unnamed (StatementPreparation off), to measure what preparing them gives.")
    var noPreparedStatements = false

    @Option(help: "lock and counter: split each side's measured time into this many rounds, the sides taking turns, so that the machine's drift falls on both alike.")
    var rounds = 3

    @Flag(help: "Skip the driver-ceiling side (lock and counter-row: plain PostgresNIO, the same statements prepared).")
    var noDriverCeiling = false

    @Flag(help: "Skip the pgbench side.")
    var noPgbench = false

    @Flag(help: "Print the results as JSON.")
    var json = false

    @OptionGroup var database: ThrowawayServerOptions

    @OptionGroup(title: "lock") var lock: LockOptions
    @OptionGroup(title: "many-keys") var manyKeys: ManyKeysOptions
    @OptionGroup(title: "counter and commit-outcome") var counter: CounterOptions
    @OptionGroup(title: "queue") var queue: QueueOptions
    @OptionGroup(title: "ingest") var ingest: IngestOptions
    @OptionGroup(title: "hold") var hold: HoldOptions
    @OptionGroup(title: "web") var web: WebOptions

    func validate() throws {
        guard (1...512).contains(concurrency) else { throw ValidationError("--concurrency must be from 1 to 512") }
        guard (1...20).contains(rounds) else { throw ValidationError("--rounds must be from 1 to 20") }
        guard keys >= 1 else { throw ValidationError("--keys must be at least 1") }
        guard counter.scopes >= 1 else { throw ValidationError("--scopes must be at least 1") }
        guard (1...Transaction.maximumKeysPerCall).contains(manyKeys.keysPerTransaction) else { throw ValidationError("--keys-per-transaction must be from 1 to \(Transaction.maximumKeysPerCall)") }
        guard (1...JobQueue.maximumBatchSize).contains(queue.enqueueBatchSize) else { throw ValidationError("--enqueue-batch-size must be from 1 to \(JobQueue.maximumBatchSize)") }
        guard (1...64).contains(queue.workers), (1...10_000).contains(queue.workerConcurrency) else { throw ValidationError("--workers must be 1…64 and --worker-concurrency 1…10000") }
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
        case .hold: try await runHold()
        case .web: try await runWeb()
        }
    }

    /// `web`: the console's pages on a big system.
    func runWeb() async throws {
        let (locks, history, requests) = (web.locks, Int64(self.history == 0 ? 10_000_000 : self.history), web.requests)
        let logger = makeLogger("pglock.bench")
        let progress = Progress(quiet: json)
        // Room for the locks in the server's lock table (max_locks_per_transaction × max_connections).
        let ephemeral = EphemeralPostgres.Configuration(maxLocksPerTransaction: max(64, locks / 50), disableDurability: true)
        let report = try await database.choice.withClient(maximumConnections: 6, ephemeralConfiguration: ephemeral, progress: progress, logger: logger) { client, target in
            progress.done("using \(target.description)")
            return try await WebBench.run(client: client, settings: try target.connectionSettings(), locks: locks, history: history, requests: requests, progress: progress, logger: logger)
        }
        try show(report) { $0.printText() }
    }

    /// `hold`: many session locks at once through a SessionLockPool.
    func runHold() async throws {
        let (holds, connections) = (hold.holds, hold.holdConnections)
        let report = try await withSetup(maximumConnections: 2) { setup in
            try await HoldBench.run(setup: setup, holds: holds, connections: connections, waitingConnections: connections)
        }
        try show(report) { $0.printText() }
    }

    /// `commit-outcome`: the default retry policy against `resolvingCommitOutcome`, interleaved.
    func runCommitOutcome() async throws {
        let (keys, scopes) = (self.keys, counter.scopes)
        let rows = try await withSetup { setup in
            try await CommitOutcomeBench.run(harness: setup.harness, client: setup.client, rounds: 3, keys: keys, scopes: scopes, progress: setup.progress)
        }
        try show(rows) { CommitOutcomeBench.printReport($0, concurrency: concurrency) }
    }

    func runQueue() async throws {
        let (batchSize, workers, workerConcurrency, drainOnly) = (queue.enqueueBatchSize, queue.workers, queue.workerConcurrency, queue.drainOnly)
        let (pool, size) = (self.pool, self.poolSize ?? max(concurrency, workers * 4) + 4)
        let extras = QueueBench.Extras(holdSnapshot: queue.holdSnapshot, history: history, bulkSize: queue.bulkSize, reapInterval: try parseDuration(queue.reapInterval))
        let report = try await withSetup(maximumConnections: 2) { setup in
            try await Self.withPooledClient(settings: setup.settings, pool: pool, size: size, progress: setup.progress) { client in
                var report = try await QueueBench.run(
                    harness: setup.harness, client: client, batchSize: batchSize, workers: workers, workerConcurrency: workerConcurrency,
                    pgbench: setup.pgbench(), drainOnly: drainOnly, extras: extras, progress: setup.progress
                )
                report.pool = pool.describe(size: size)
                return report
            }
        }
        try show(report) { $0.printText(concurrency: concurrency) }
    }

    func runCounter() async throws {
        let (scopes, noDriverCeiling, rounds) = (counter.scopes, self.noDriverCeiling, self.rounds)
        let strategies = counter.strategy.map { [$0] } ?? GaplessCounter.Strategy.allCases
        let rows = try await withSetup { setup in
            try await CounterBench.run(strategies: strategies, scopes: scopes, rounds: rounds, setup: setup, driverCeiling: !noDriverCeiling)
        }
        try show(rows) { rows in
            print("scenario counter, concurrency \(concurrency), \(scopes) scopes; peak memory \(String(format: "%.0f", peakMemoryMegabytes())) MiB")
            for row in rows {
                print("  \(row.head.strategy):")
                row.comparison.printLines(indent: "    ", labelWidth: 9)
            }
        }
    }

    func runLockScenario() async throws {
        let (keys, scenario, perTransaction, rounds, driverCeiling) = (self.keys, self.scenario, manyKeys.keysPerTransaction, self.rounds, !self.noDriverCeiling)
        let (pool, size) = (self.pool, self.poolSize ?? concurrency + 2)
        let report = try await withSetup { setup in
            let turns = BenchTurns(rounds: rounds, progress: setup.progress)
            if scenario == .lockSession {
                return try await Self.withPooledClient(settings: setup.settings, pool: pool, size: size, progress: setup.progress) { pooled in
                    var report = try await LockScenariosBench.lockSession(harness: setup.harness, client: pooled, keys: keys, turns: turns, driverCeiling: driverCeiling, pgbench: setup.pgbench())
                    report.head.pool = pool.describe(size: size)
                    return report
                }
            }
            return try await LockScenariosBench.manyKeys(harness: setup.harness, keys: keys, perTransaction: perTransaction, turns: turns, driverCeiling: driverCeiling, pgbench: setup.pgbench())
        }
        try show(report) { $0.printText() }
    }

    func runLock() async throws {
        let (keys, variant, executor, noDriverCeiling, rounds) = (self.keys, lock.variant, self.executor, self.noDriverCeiling, self.rounds)
        let (pool, size) = (self.pool, self.poolSize ?? concurrency + 2)
        let report = try await withSetup { setup in
            let (harness, progress, concurrency) = (setup.harness, setup.progress, setup.harness.concurrency)
            let ceilingVariant = noDriverCeiling ? nil : variant.driverCeiling
            // Rounds only when there are two sides to take turns.
            let round = ceilingVariant == nil ? harness : harness.splitInto(rounds)
            func measure(_ variant: LockVariant, executor: ExecutorChoice) async throws -> SideMeasurement {
                if variant.isPooled {
                    // Each worker loops: BEGIN; lock a random key; COMMIT, through the pool.
                    return try await Self.withPooledClient(settings: setup.settings, pool: pool, size: size, progress: progress) { pooled in
                        try await round.measurePooled { random in
                            let key = Int64.random(in: 1...Int64(keys), using: &random)
                            if variant == .rawPooled {
                                try await Self.rawPooledLockTransaction(pooled, key: key, logger: round.logger)
                            } else {
                                try await pooled.withAdvisoryLock(.int64(key), logger: round.logger) { _ in }
                            }
                        }
                    }
                }
                // Each worker owns one connection and loops on it, in the given variant.
                var dedicated = round
                dedicated.executor = executor
                return try await dedicated.measureLoops(residentGrowth: false) { connection, _, span in
                    try await Self.runLockWorker(variant: variant, connection: connection, keys: keys, span: span, logger: round.logger)
                }
            }
            var comparison = try await BenchTurns(rounds: rounds, progress: progress).compare(
                ours: ("\(variant.rawValue), \(executor.rawValue), \(concurrency) workers, BEGIN; pg_advisory_xact_lock(random key of \(keys)); COMMIT, \(format(round.warmup)) warm-up + \(format(round.duration))", {
                    try await measure(variant, executor: executor)
                }),
                ceiling: ceilingVariant.map { ceilingVariant in
                    (ceilingVariant == .rawPooled
                        ? "plain PostgresNIO in client.withConnection, the same prepared statements"
                        : "plain PostgresNIO futures on the event loop, the same prepared statements", {
                        try await measure(ceilingVariant, executor: .eventLoop)
                    })
                }
            )
            comparison.pgbench = try await setup.pgbench()?.measure(
                "pgbench: the same SQL, \(concurrency) clients, prepared statements",
                script: "\\set k random(1, :keys)\nBEGIN;\nSELECT pg_advisory_xact_lock(:k);\nCOMMIT;\n",
                harness: harness, variables: ["keys": "\(keys)"], progress: progress
            )
            let run = LockBenchRun(
                scenario: "lock", concurrency: concurrency, variant: variant.rawValue, executor: executor.rawValue,
                peakMemoryMegabytes: peakMemoryMegabytes(), pool: variant.isPooled ? pool.describe(size: size) : nil
            )
            return BenchReport(head: run, comparison: comparison)
        }
        try show(report) { $0.printText() }
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
