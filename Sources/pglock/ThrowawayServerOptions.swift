import ArgumentParser
import EphemeralPostgres
import Foundation
import Logging
import PostgresLocks
import PostgresNIO

/// `--database-url` and `--connect-timeout` of the commands that bring their own server when
/// given none (demo, bench, soak): `--database-url`, else `DATABASE_URL`, else a throwaway
/// local PostgreSQL, removed when the command ends. Commands that act on *your* server use
/// ``DatabaseOptions``.
struct ThrowawayServerOptions: ParsableArguments {
    /// The help of `--database-url` here: the phrase the tests look for.
    static let urlHelp = "A postgres:// URL of the server to use (default: $DATABASE_URL, else a throwaway local server)."

    @Option(name: .customLong("database-url"), help: ArgumentHelp(urlHelp, valueName: "url"))
    var databaseURL: String?

    @Option(name: .customLong("connect-timeout"), help: ArgumentHelp(DatabaseChoice.connectTimeoutHelp, valueName: "duration"))
    var connectTimeout: String?

    /// The choice these options make.
    var choice: DatabaseChoice { DatabaseChoice(databaseURL: databaseURL, connectTimeout: connectTimeout) }

    /// The settings given by `--database-url` or `DATABASE_URL`, or nil for a throwaway server.
    func explicitSettings(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ConnectionSettings? {
        try choice.explicitSettings(environment: environment)
    }

    /// Runs `body` with a running client on the chosen server; a throwaway server is always
    /// removed afterwards.
    func withClient<Result: Sendable>(
        maximumConnections: Int,
        ephemeralConfiguration: EphemeralPostgres.Configuration = EphemeralPostgres.Configuration(disableDurability: true),
        progress: Progress,
        logger: Logger,
        _ body: @Sendable (PostgresClient, DatabaseChoice.Target) async throws -> Result
    ) async throws -> Result {
        try await choice.withClient(maximumConnections: maximumConnections, ephemeralConfiguration: ephemeralConfiguration, progress: progress, logger: logger, body)
    }
}
