import ArgumentParser
import PostgresLocks

// `pglock bench`'s options of one scenario each, shown under the scenario's name in `--help`.
extension BenchCommand {
    /// `lock`: how our side drives the lock loop.
    struct LockOptions: ParsableArguments {
        @Option(help: ArgumentHelp(
            "How our side drives the lock loop: \(LockVariant.allCases.map(\.rawValue).joined(separator: ", ")).",
            discussion: "connection (default): the library's withAdvisoryLock on one dedicated connection per worker, as pgbench has; library: PostgresClient.withAdvisoryLock, leasing from the pool each time; raw-prepared / raw-futures: plain PostgresNIO without the library, statements prepared; raw-unnamed: the same futures with unnamed statements (parsed on every run); raw-pooled: plain PostgresNIO in PostgresClient.withConnection, statements prepared (the driver ceiling of library)."
        ))
        var variant: LockVariant = .connection
    }

    /// `many-keys`: the keys each transaction locks.
    struct ManyKeysOptions: ParsableArguments {
        @Option(help: "Keys locked per transaction.")
        var keysPerTransaction = 10
    }

    /// `counter` (and `commit-outcome`, which uses the scopes): which strategy, over how many scopes.
    struct CounterOptions: ParsableArguments {
        @Option(help: "The strategy to measure (\(GaplessCounter.Strategy.allCases.map(\.rawValue).joined(separator: ", "))); all when omitted.")
        var strategy: GaplessCounter.Strategy?

        @Option(help: "How many scopes to spread the numbers over.")
        var scopes = 1_000
    }

    /// `queue`: the enqueue batches, the drain workers and the extra steps.
    struct QueueOptions: ParsableArguments {
        @Option(help: "Jobs per enqueue batch.")
        var enqueueBatchSize = 1_000

        @Option(help: "Drain workers (QueueWorker services in this process).")
        var workers = 2

        @Option(help: "Concurrent jobs per worker.")
        var workerConcurrency = 500

        @Flag(help: "Hold one snapshot open (a REPEATABLE READ transaction) for the whole drain, as a long report or backup would.")
        var holdSnapshot = false

        @Option(help: "Jobs per call in the COPY vs unnest bulk-enqueue comparison (0: skip).")
        var bulkSize = 50_000

        @Flag(help: ArgumentHelp("Measure the drain only (for profiling).", visibility: .hidden))
        var drainOnly = false

        @Option(help: ArgumentHelp("How often the drain workers run their maintenance (reaper, depth, retention), e.g. 5s (the workers' default).", visibility: .hidden))
        var reapInterval = "30s"
    }

    /// `ingest`: the batches producers send.
    struct IngestOptions: ParsableArguments {
        @Option(help: "Events per batch, a number or a range such as 100-1000.")
        var batchSize = "100-1000"
    }

    /// `hold`: how many session locks, on how many sessions.
    struct HoldOptions: ParsableArguments {
        @Option(help: "Session locks to hold at once.")
        var holds = 10_000

        @Option(help: "The SessionLockPool's carrying sessions (it may open as many again for waits that block).")
        var holdConnections = 4
    }

    /// `web`: the locks held while the console's pages are measured, and the requests per page.
    struct WebOptions: ParsableArguments {
        @Option(help: "Advisory locks held while the pages are measured.")
        var locks = 10_000

        @Option(help: "Requests per page.")
        var requests = 100
    }
}
