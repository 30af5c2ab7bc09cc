import ArgumentParser
import EphemeralPostgres
import Foundation
import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO

/// Which server a command uses: the values of `--database-url` and `--connect-timeout`,
/// whichever option group (``DatabaseOptions`` or ``ThrowawayServerOptions``) read them.
struct DatabaseChoice: Sendable {
    var databaseURL: String?
    var connectTimeout: String?

    /// The help of `--connect-timeout`, the same for every command.
    static let connectTimeoutHelp = "How long to wait for a connection to --database-url, e.g. 5s (default: the URL's connect_timeout, else $PGCONNECT_TIMEOUT, else \(defaultConnectTimeoutSeconds)s). An unreachable server makes the command fail within it."

    /// The connect timeout when neither the option, the URL nor `PGCONNECT_TIMEOUT` gives one.
    static let defaultConnectTimeoutSeconds = 10

    /// Where the command's server is, for progress output (never shows a password).
    enum Target: Sendable {
        case existing(ConnectionSettings)
        case ephemeral(EphemeralPostgres)

        var description: String {
            switch self {
            case .existing(let settings): return settings.redactedURL
            case .ephemeral(let server): return "throwaway PostgreSQL at \(server.socketDirectory) (port \(server.port))"
            }
        }

        /// Settings that reach this server (for dedicated connections and pgbench).
        func connectionSettings() throws -> ConnectionSettings {
            switch self {
            case .existing(let settings): return settings
            case .ephemeral(let server): return try ConnectionSettings(url: server.url())
            }
        }
    }

    /// The settings to use, or nil for a throwaway server.
    ///
    /// The connect timeout is `--connect-timeout`, else the URL's `connect_timeout`, else
    /// `PGCONNECT_TIMEOUT`, else ``defaultConnectTimeoutSeconds``.
    func explicitSettings(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ConnectionSettings? {
        var settings: ConnectionSettings
        if let databaseURL {
            settings = try ConnectionSettings(url: databaseURL, environment: environment)
        } else if let url = environment[ConnectionSettings.urlVariable], !url.isEmpty {
            settings = try ConnectionSettings(url: url, environment: environment)
        } else {
            return nil
        }
        if let connectTimeout {
            let duration = try parseDuration(connectTimeout)
            // Whole seconds, as libpq's connect_timeout; at least one.
            settings.connectTimeoutSeconds = max(1, Int(seconds(duration).rounded(.up)))
        } else if settings.connectTimeoutSeconds == nil {
            settings.connectTimeoutSeconds = Self.defaultConnectTimeoutSeconds
        }
        return settings
    }

    /// Runs `body` with a running client on the chosen server; a throwaway server is always removed afterwards.
    func withClient<Result: Sendable>(
        maximumConnections: Int,
        ephemeralConfiguration: EphemeralPostgres.Configuration = EphemeralPostgres.Configuration(disableDurability: true),
        progress: Progress,
        logger: Logger,
        _ body: @Sendable (PostgresClient, Target) async throws -> Result
    ) async throws -> Result {
        if let settings = try explicitSettings() {
            try await settings.checkConnection(logger: logger)  // fail fast with the real reason, not after the pool's retries
            var configuration = try settings.makeClientConfiguration(poolSize: maximumConnections)
            configuration.options.additionalStartupParameters = [("application_name", settings.applicationName ?? "pglock")]
            return try await Self.run(configuration: configuration, target: .existing(settings), logger: logger, body)
        }
        let started = ContinuousClock.now
        progress.step("starting a throwaway PostgreSQL")
        return try await EphemeralPostgres.withServer(ephemeralConfiguration, logger: logger) { server in
            progress.done("started in \(format(ContinuousClock.now - started)) (\(server.binaries.directory))")
            var configuration = server.clientConfiguration(applicationName: "pglock")
            try configuration.options.useRecommendedPool(connections: maximumConnections)
            let result = try await Self.run(configuration: configuration, target: .ephemeral(server), logger: logger, body)
            progress.step("removing the throwaway PostgreSQL")
            return result
        }
    }

    /// Runs `body` with a small client on the server given by `--database-url` or
    /// `DATABASE_URL` (commands that act on *your* server never start a throwaway one).
    ///
    /// - Parameter purpose: completes "… give --database-url or set DATABASE_URL: <purpose>".
    func withExplicitClient<Result: Sendable>(
        maximumConnections: Int,
        applicationName: String,
        purpose: String,
        _ body: @Sendable (PostgresClient) async throws -> Result
    ) async throws -> Result {
        guard let settings = try explicitSettings() else {
            throw ValidationError("give --database-url or set DATABASE_URL: \(purpose)")
        }
        try await settings.checkConnection(logger: makeLogger("pglock"))  // fail fast with the real reason, not after the pool's retries
        var configuration = try settings.makeClientConfiguration(poolSize: maximumConnections)
        configuration.options.additionalStartupParameters = [("application_name", settings.applicationName ?? applicationName)]
        return try await Self.run(configuration: configuration, target: .existing(settings), logger: makeLogger("pglock")) { client, _ in
            try await body(client)
        }
    }

    private static func run<Result: Sendable>(
        configuration: PostgresClient.Configuration,
        target: Target,
        logger: Logger,
        _ body: @Sendable (PostgresClient, Target) async throws -> Result
    ) async throws -> Result {
        let client = PostgresClient(configuration: configuration, backgroundLogger: makeBackgroundLogger())
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client, target)
        }
    }
}
