import PglockHarness
import PostgresLocks
import PostgresNIO

/// What a bench scenario runs with: a client on the chosen server, a harness measuring on
/// dedicated connections to it, and the progress lines.
struct BenchSetup: Sendable {
    var client: PostgresClient
    var harness: BenchHarness
    var progress: Progress
    /// Whether the pgbench side is skipped (`--no-pgbench`).
    var noPgbench: Bool

    /// How to reach the server (for dedicated connections, pools of their own and pgbench).
    var settings: ConnectionSettings { harness.settings }

    /// pgbench on this server; nil with `--no-pgbench`, or when it is not installed (which is
    /// said on the progress lines).
    func pgbench() -> PgbenchRunner? {
        guard !noPgbench else { return nil }
        guard let executable = PgbenchRunner.locate() else {
            progress.done("pgbench not found (apt-get install postgresql-contrib): skipped")
            return nil
        }
        return PgbenchRunner(executable: executable, settings: settings)
    }
}

extension BenchCommand {
    /// Runs `body` with the bench's setup on the chosen server (`--database-url`, else a
    /// throwaway one), its client holding at most `maximumConnections` (default:
    /// `--concurrency` + 2) and running the hot statements as `--no-prepared-statements` says.
    func withSetup<Result: Sendable>(
        maximumConnections: Int? = nil,
        _ body: @Sendable (BenchSetup) async throws -> Result
    ) async throws -> Result {
        let (measured, warmupDuration) = (try parseDuration(duration), try parseDuration(warmup))
        let logger = makeLogger("pglock.bench")
        let progress = Progress(quiet: json)
        let (concurrency, executor, noPgbench) = (self.concurrency, self.executor, self.noPgbench)
        return try await database.choice.withClient(maximumConnections: maximumConnections ?? concurrency + 2, progress: progress, logger: logger) { client, target in
            progress.done("using \(target.description)")
            client.statementPreparation = Self.preparation
            let harness = BenchHarness(
                settings: try target.connectionSettings(), concurrency: concurrency, warmup: warmupDuration, duration: measured, executor: executor, logger: logger
            )
            return try await body(BenchSetup(client: client, harness: harness, progress: progress, noPgbench: noPgbench))
        }
    }

    /// Prints `report` as JSON with `--json`, else as `text` prints it.
    func show<Report: Encodable>(_ report: Report, text: (Report) throws -> Void) throws {
        if json { return try printJSON(report) }
        try text(report)
    }
}
