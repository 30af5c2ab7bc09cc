import ArgumentParser
import EphemeralPostgres
import Foundation
import Logging
import PglockHarness
import PostgresLocks

/// `pglock soak`: the fault suite's workload, run for longer, for manual use.
struct SoakCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Run locks, gapless counters, exactly-once ingestion, queue work and cancellation storms under injected faults, then check every invariant.",
        discussion: """
        Faults: a backend of the run's sessions is terminated every --terminate-every on average; on a \
        throwaway server (no --database-url) the server is also restarted every --restart-every. \
        Afterwards the run checks, in the database: no overlapping critical sections, no lost update, \
        no confirmed commit missing, gapless unique numbers, every ingested key stored once with exactly \
        one handler effect (none missing that a client saw accepted), every job completed with exactly \
        one side effect, no advisory lock left, no hung call. Tallies are printed every --report-every \
        on standard error; the verdict goes to standard output. Exit status 1 if any invariant broke.

        The default mix: 6 lock workers, 6 counter workers, 6 ingestion workers (batches of 24 keys, \
        about 30% of them duplicates, a batch broken by a fault sent again until accepted), 2 queue \
        workers and storm waves of 60 lock waits.

        With --database-url the run creates a schema of its own (pglocks_soak_<random>) and drops it \
        afterwards; it only terminates its own sessions (found by application_name).

        With --pooled-locks N the run is a memory soak instead: N PostgresClient.withAdvisoryLock \
        calls by --tasks tasks through the pool (--pool fixed, the library's recommended \
        configuration, or driver-defaults, PostgresNIO's), no faults; the resident size is sampled \
        while they run and must stay within --rss-bound MiB of its value after the warm-up. \
        Exit status 1 beyond it, or if a call failed.
        """
    )

    @Option(help: "Run the pooled-lock memory soak: this many withAdvisoryLock calls through the pool (e.g. 1000000).")
    var pooledLocks: Int?

    @Option(help: "pooled locks: tasks making calls at once.")
    var tasks = 8

    @Option(help: "the pool's configuration: recommended (the library's), fixed (minimum = maximum), driver-defaults (PostgresNIO's), or one cause alone: fixed-keep-alive, lazy-no-keep-alive. Also used by the fault soak.")
    var pool: PoolChoice = .recommended

    @Option(help: "pooled locks: the pool's size.")
    var poolSize = ConnectionSettings.defaultPoolSize

    @Option(help: "pooled locks: calls before the baseline resident size is taken.")
    var warmupCalls = 20_000

    @Option(help: "pooled locks: how far the resident size may rise above the baseline, in MiB.")
    var rssBound = 16.0

    @Option(help: "pooled locks: stay idle this long after the calls and sample again (e.g. 100s); 'none' to skip.")
    var linger = "none"

    @Option(help: "How long to run under faults (e.g. 30s, 10m).")
    var duration = "10m"

    @Option(help: "Terminate one of the run's backends this often on average (e.g. 200ms); 'never' to turn off.")
    var terminateEvery = "200ms"

    @Option(help: "Restart the throwaway server this often (ignored with --database-url); 'never' to turn off.")
    var restartEvery = "60s"

    @Option(help: "Print tallies this often.")
    var reportEvery = "10s"

    @Option(help: "Tasks running lock critical sections.")
    var lockWorkers = 6

    @Option(help: "Tasks allocating gapless numbers.")
    var counterWorkers = 6

    @Option(help: "Tasks ingesting batches of business keys (about 30% duplicates) through ExactlyOnceIngestion.")
    var ingestWorkers = 6

    @Option(help: "Queue workers (each runs 4 jobs at once).")
    var queueWorkers = 2

    @Option(help: "Lock waits per cancellation-storm wave (0: no storm).")
    var stormTasks = 60

    @Option(help: "Pause up to this long after each lock section and number (e.g. 5ms), to run with less CPU; 'none' for full speed.")
    var pause = "none"

    @Option(help: "Pause this long between storm waves; 'none' for back to back.")
    var stormPause = "none"

    @Flag(help: "Print the final report as JSON (the summary goes to standard error).")
    var json = false

    @Flag(help: "Keep the run's tables afterwards.")
    var keep = false

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        if let pooledLocks { return try await runPooledLocks(pooledLocks) }
        var configuration = SoakConfiguration(duration: try parseDuration(duration))
        configuration.terminateEvery = terminateEvery == "never" ? nil : try parseDuration(terminateEvery)
        let restartInterval = restartEvery == "never" ? nil : try parseDuration(restartEvery)
        configuration.reportEvery = try parseDuration(reportEvery)
        configuration.lockWorkers = lockWorkers
        configuration.counterWorkers = counterWorkers
        configuration.ingestWorkers = ingestWorkers
        configuration.queueWorkers = queueWorkers
        configuration.stormTasks = stormTasks
        configuration.pause = pause == "none" ? .zero : try parseDuration(pause)
        configuration.stormWavePause = stormPause == "none" ? .zero : try parseDuration(stormPause)
        configuration.keepTables = keep
        configuration.maximumConnections = 60
        configuration.pool = pool
        configuration.progress = { tallies, elapsed in
            FileHandle.standardError.write(Data("[\(format(elapsed))] \(tallies.line)\n".utf8))
        }
        try configuration.validate()

        // Faults make the library warn on every broken connection: errors only, unless asked.
        var logger = makeLogger("pglock.soak")
        if ProcessInfo.processInfo.environment["PGLOCK_LOG_LEVEL"] == nil { logger.logLevel = .error }
        let progress = Progress(quiet: false)
        let report: SoakReport
        if let settings = try database.explicitSettings() {
            try await settings.checkConnection(logger: logger)
            progress.step("soaking \(settings.redactedURL) for \(format(configuration.duration)) (no restarts against an existing server)")
            report = try await SoakWorkload(settings: settings, configuration: configuration).run(logger: logger)
        } else {
            // Durable when it will be restarted (a crash must lose nothing committed); otherwise fast.
            progress.step("starting a throwaway PostgreSQL (\(restartInterval == nil ? "no restarts: fsync off" : "durable: restarts must lose nothing committed"))")
            let serverConfiguration = EphemeralPostgres.Configuration(
                maxConnections: 200, disableDurability: restartInterval == nil, settings: ["deadlock_timeout": "100ms"]
            )
            report = try await EphemeralPostgres.withServer(serverConfiguration, logger: logger) { server in
                var configuration = configuration
                if let restartInterval {
                    configuration.restartEvery = restartInterval
                    configuration.restart = {
                        try await server.stopServer(immediate: true)
                        try await server.startServer()
                    }
                }
                progress.step("soaking for \(format(configuration.duration))")
                return try await SoakWorkload(settings: try ConnectionSettings(url: server.url()), configuration: configuration).run(logger: logger)
            }
        }
        try finish(report, summary: report.summary, passed: report.passed)
    }

    /// `--pooled-locks N`: the memory soak of the pooled path.
    func runPooledLocks(_ calls: Int) async throws {
        var configuration = PooledLockSoak.Configuration()
        configuration.calls = calls
        configuration.warmupCalls = warmupCalls
        configuration.tasks = tasks
        configuration.pool = pool
        configuration.poolSize = poolSize
        configuration.boundMiB = rssBound
        configuration.sampleEvery = .milliseconds(250)
        configuration.linger = linger == "none" ? .zero : try parseDuration(linger)
        configuration.progress = { line in FileHandle.standardError.write(Data("  \(line)\n".utf8)) }
        let logger = makeLogger("pglock.soak")
        let progress = Progress(quiet: false)
        let report: PooledLockSoak.Report
        if let settings = try database.explicitSettings() {
            try await settings.checkConnection(logger: logger)
            progress.step("pooled-lock soak on \(settings.redactedURL): \(pool.describe(size: poolSize))")
            report = try await PooledLockSoak(settings: settings, configuration: configuration).run(logger: logger)
        } else {
            progress.step("starting a throwaway PostgreSQL (fsync off)")
            report = try await EphemeralPostgres.withServer(EphemeralPostgres.Configuration(disableDurability: true), logger: logger) { server in
                progress.step("pooled-lock soak: \(pool.describe(size: poolSize))")
                return try await PooledLockSoak(settings: try ConnectionSettings(url: server.url()), configuration: configuration).run(logger: logger)
            }
        }
        try finish(report, summary: report.summary, passed: report.passed)
    }

    /// Prints a report (JSON on standard output and the summary on standard error with
    /// `--json`, the summary alone otherwise) and fails the command when it did not pass.
    private func finish(_ report: some Encodable, summary: String, passed: Bool) throws {
        if json {
            try printJSON(report)
            FileHandle.standardError.write(Data((summary + "\n").utf8))
        } else {
            print(summary)
        }
        if !passed { throw ExitCode.failure }
    }
}

extension PoolChoice: ExpressibleByArgument {}
