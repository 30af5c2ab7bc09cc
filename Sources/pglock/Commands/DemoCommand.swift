import ArgumentParser
import EphemeralPostgres
import Foundation
import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO

/// What every demo scenario gets.
struct DemoContext: Sendable {
    var client: PostgresClient
    /// How to reach the demo's database, for scenarios that need dedicated connections.
    var settings: ConnectionSettings
    var logger: Logger
    var progress: Progress
    /// Leave the scenarios' tables in place afterwards (`--keep-tables`).
    var keepTables: Bool
    /// The connection faults survived so far (read before and after each scenario).
    var faults = FaultTally()
}

/// `pglock demo`: the main job. Runs every scenario with checked invariants.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run every scenario against a throwaway PostgreSQL (or --database-url) and check its invariants.",
        discussion: "Exits with status 1 if any invariant fails."
    )

    @OptionGroup var database: ThrowawayServerOptions

    @Flag(help: "Print the report as JSON on standard output.")
    var json = false

    @Flag(help: "Keep the demo's tables afterwards (to look at them).")
    var keepTables = false

    /// The throwaway server: no durability (a demo), and deadlocks detected after 100 ms
    /// instead of 1 s so the unsorted-locks scenario shows them quickly.
    static let serverConfiguration = EphemeralPostgres.Configuration(disableDurability: true, settings: ["deadlock_timeout": "100ms"])

    func run() async throws {
        let logger = makeLogger("pglock.demo")
        let progress = Progress(quiet: false)
        let started = ContinuousClock.now
        let scenarios: [any DemoScenario] = [VersionRaceScenario(), IngestionScenario(), ManyKeysScenario(), SingletonScenario(), EntityAndRowLockScenario(), LeaderFailoverScenario(), SemaphoreScenario(), QueueDrainScenario(), PeriodicJobsScenario(), FleetLimitScenario()]
        let outcomes = try await database.choice.withClient(maximumConnections: 24, ephemeralConfiguration: Self.serverConfiguration, progress: progress, logger: logger) { client, target in
            progress.done("using \(target.description)")
            // Dedicated connections (leader election) carry the pool's application_name too, so
            // whoever watches or terminates the demo's sessions finds all of them.
            var settings = try target.connectionSettings()
            settings.applicationName = settings.applicationName ?? "pglock"
            let context = DemoContext(client: client, settings: settings, logger: logger, progress: progress, keepTables: keepTables)
            let pooling = await client.connectionPooling(logger: logger)
            if pooling == .transactionPooling {
                progress.done("transaction pooling detected: scenarios that need a server session are skipped")
            }
            var outcomes: [ScenarioOutcome] = []
            for scenario in scenarios {
                if scenario.needsServerSession && pooling == .transactionPooling {
                    outcomes.append(.skipped(scenario.name, reason: "needs a session (transaction pooling detected)"))
                    continue
                }
                let before = context.faults.snapshot
                var rows = try await scenario.run(context: context)
                let faults = context.faults.snapshot - before
                if !rows.isEmpty { rows[rows.count - 1].faults = faults }  // once per scenario, on its last row
                if !faults.isZero { progress.done(faults.summary) }
                outcomes += rows
            }
            return outcomes
        }
        let failed = outcomes.contains { $0.passed == false }
        if json {
            struct Report: Encodable { var passed: Bool; var seconds: Double; var outcomes: [ScenarioOutcome] }
            try printJSON(Report(passed: !failed, seconds: seconds(ContinuousClock.now - started), outcomes: outcomes))
        } else {
            print("")
            print(renderTable(outcomes), terminator: "")
            print(failed ? "\nFAILED: an invariant did not hold." : "\nAll invariants held (\(format(ContinuousClock.now - started))).")
        }
        if failed { throw ExitCode(1) }
    }
}
