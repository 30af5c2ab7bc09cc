import ArgumentParser
import PglockHarness
import PostgresLocks

extension SoakCommand {
    /// The options of the pooled-lock memory soak (`--pooled-locks N`), and the pool both soaks use.
    struct PooledLockSoakOptions: ParsableArguments {
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

        /// The memory soak's configuration for `calls` calls.
        func configuration(calls: Int) throws -> PooledLockSoak.Configuration {
            var configuration = PooledLockSoak.Configuration()
            configuration.calls = calls
            configuration.warmupCalls = warmupCalls
            configuration.tasks = tasks
            configuration.pool = pool
            configuration.poolSize = poolSize
            configuration.boundMiB = rssBound
            configuration.sampleEvery = .milliseconds(250)
            configuration.linger = try parseDuration(linger, off: "none") ?? .zero
            return configuration
        }
    }

    /// The options of the fault soak: how long, which faults, which work.
    struct FaultSoakOptions: ParsableArguments {
        @Option(help: "How long to run under faults (e.g. 30s, 10m).")
        var duration = "10m"

        @Option(help: "Terminate one of the run's backends this often on average (e.g. 200ms); 'never' to turn off.")
        var terminateEvery = "200ms"

        @Option(help: "Restart the throwaway server this often (ignored with --database-url); 'never' to turn off.")
        var restartEvery = "60s"

        @Option(help: "Print tallies this often.")
        var reportEvery = "10s"

        @Option(
            help: ArgumentHelp(
                "The work to run, as kind=count pairs joined by commas; a kind left out runs nothing (queue=2: the queue alone). (default: \(SoakWork.standard))",
                discussion: "lock: tasks running lock critical sections; counter: tasks allocating gapless numbers; ingest: tasks ingesting batches of business keys (about 30% duplicates) through ExactlyOnceIngestion; queue: queue workers (each runs 4 jobs at once); storm: lock waits per cancellation-storm wave."
            ),
            transform: { text in try SoakWork(parsing: text) }
        )
        var work = SoakWork.standard

        @Option(help: "Pause up to this long after each lock section and number (e.g. 5ms), to run with less CPU; 'none' for full speed.")
        var pause = "none"

        @Option(help: "Pause this long between storm waves; 'none' for back to back.")
        var stormPause = "none"

        /// The fault soak's configuration, its pool and whether it keeps its tables besides
        /// (restarts are set up by the command, which owns the server: ``restartInterval()``).
        func configuration(pool: PoolChoice, keepTables: Bool) throws -> SoakConfiguration {
            var configuration = SoakConfiguration(duration: try parseDuration(duration))
            configuration.terminateEvery = try parseDuration(terminateEvery, off: "never")
            configuration.reportEvery = try parseDuration(reportEvery)
            work.apply(to: &configuration)
            configuration.pause = try parseDuration(pause, off: "none") ?? .zero
            configuration.stormWavePause = try parseDuration(stormPause, off: "none") ?? .zero
            configuration.keepTables = keepTables
            configuration.maximumConnections = 60
            configuration.pool = pool
            return configuration
        }

        /// How often the throwaway server is restarted; nil for never.
        func restartInterval() throws -> Duration? {
            try parseDuration(restartEvery, off: "never")
        }
    }
}

/// `text` as a duration, or nil when it is `off` (a word such as "never" or "none").
func parseDuration(_ text: String, off: String) throws -> Duration? {
    text == off ? nil : try parseDuration(text)
}
