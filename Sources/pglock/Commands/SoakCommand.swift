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

        The default --work, lock=6,counter=6,ingest=6,queue=2,storm=60: 6 lock workers, 6 counter \
        workers, 6 ingestion workers (batches of 24 keys, about 30% of them duplicates, a batch broken \
        by a fault sent again until accepted), 2 queue workers and storm waves of 60 lock waits. \
        --work queue=2 runs the queue alone.

        With --database-url the run creates a schema of its own (pglocks_soak_<random>) and drops it \
        afterwards; it only terminates its own sessions (found by application_name).

        With --pooled-locks N the run is a memory soak instead: N PostgresClient.withAdvisoryLock \
        calls by --tasks tasks through the pool (--pool fixed, the library's recommended \
        configuration, or driver-defaults, PostgresNIO's), no faults; the resident size is sampled \
        while they run and must stay within --rss-bound MiB of its value after the warm-up. \
        Exit status 1 beyond it, or if a call failed.
        """
    )

    @OptionGroup var pooled: PooledLockSoakOptions

    @OptionGroup var faults: FaultSoakOptions

    @Flag(help: "Print the final report as JSON (the summary goes to standard error).")
    var json = false

    @Flag(help: "Keep the run's tables afterwards.")
    var keep = false

    @OptionGroup var database: ThrowawayServerOptions

    func run() async throws {
        if let pooledLocks = pooled.pooledLocks { return try await runPooledLocks(pooledLocks) }
        var configuration = try faults.configuration(pool: pooled.pool, keepTables: keep)
        let restartInterval = try faults.restartInterval()
        configuration.progress = { tallies, elapsed in
            FileHandle.standardError.write(Data("[\(format(elapsed))] \(tallies.line)\n".utf8))
        }
        try configuration.validate()

        // Faults make the library warn on every broken connection: errors only, unless asked.
        var logger = makeLogger("pglock.soak")
        if ProcessInfo.processInfo.environment["PGLOCK_LOG_LEVEL"] == nil { logger.logLevel = .error }
        let progress = Progress(quiet: false)
        let report: SoakReport
        if let settings = try database.choice.explicitSettings() {
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
        var configuration = try pooled.configuration(calls: calls)
        configuration.progress = { line in FileHandle.standardError.write(Data("  \(line)\n".utf8)) }
        let (pool, poolSize) = (pooled.pool, pooled.poolSize)
        let logger = makeLogger("pglock.soak")
        let progress = Progress(quiet: false)
        let report: PooledLockSoak.Report
        if let settings = try database.choice.explicitSettings() {
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
