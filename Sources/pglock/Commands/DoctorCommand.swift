import ArgumentParser
import Foundation
import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO

/// `pglock doctor`: checks a server for what the library depends on.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check a server: version, pooling proxy (named, with its mode), advisory-lock exclusion, lock-table capacity and use, timeouts.",
        discussion: "Exits with status 1 if a check fails."
    )

    @OptionGroup var options: MonitorOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let settings = try options.database.choice.explicitSettings()
        let diagnosis = try await options.withClient { client, logger in try await client.diagnose(settings: settings, logger: logger) }
        if json {
            try printJSON(diagnosis)
        } else {
            let width = diagnosis.verdicts.map(\.check.count).max() ?? 0
            for verdict in diagnosis.verdicts {
                print("\(verdict.level.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0))  \(verdict.check.padding(toLength: width, withPad: " ", startingAt: 0))  \(verdict.detail)")
            }
            print(diagnosis.passed ? "\nThe library's promises hold on this server." : "\nA check failed: see above.")
        }
        if !diagnosis.passed { throw ExitCode(1) }
    }
}
