import EphemeralPostgres
import Foundation
import Logging
import PostgresLocks
import PostgresNIO
import Testing

/// A real PgBouncer for tests, in front of the shared test server (``TestDatabase/server()``).
///
/// Each call starts its own pooler (a fraction of a second) and removes it afterwards:
///
/// ```swift
/// @Test(.needsPgBouncer)
/// func locksThroughTransactionPooling() async throws {
///     try await TestPgBouncer.withPooler(mode: .transaction) { pooled in
///         try await pooled.client.withAdvisoryLock(...)
///     }
/// }
/// ```
///
/// Pooler tests cannot run when `pgbouncer` is not installed, or when `DATABASE_URL` is set
/// (the throwaway pooler stands in front of the throwaway server only): ``unavailableReason``
/// says which, and ``skipIfUnavailable(_:)`` prints it.
public enum TestPgBouncer {
    /// Why pooler tests cannot run here, or nil when they can.
    public static var unavailableReason: String? {
        if let url = ProcessInfo.processInfo.environment[ConnectionSettings.urlVariable], !url.isEmpty {
            return "DATABASE_URL is set, and a throwaway PgBouncer stands only in front of the throwaway server (unset DATABASE_URL to run pooler tests)"
        }
        do {
            _ = try EphemeralPgBouncer.locateExecutable()
        } catch {
            return "pgbouncer is not installed (Debian/Ubuntu: `apt-get install pgbouncer`)"
        }
        return nil
    }

    /// Whether pooler tests can run here (see ``unavailableReason``).
    public static var isAvailable: Bool { unavailableReason == nil }

    /// Prints `skipped: <test>: <reason>` and returns true when pooler tests cannot run here;
    /// use as `if TestPgBouncer.skipIfUnavailable() { return }`.
    public static func skipIfUnavailable(_ test: String = #function) -> Bool {
        guard let reason = unavailableReason else { return false }
        print("skipped: \(test): \(reason)")
        return true
    }

    /// Creates a fresh database named after the test on the shared server, starts a PgBouncer in
    /// `mode` in front of it, runs `body` with a running client through the pooler (at most
    /// `maximumConnections` client connections), then removes the pooler and drops the database.
    ///
    /// - Parameters:
    ///   - poolSize: the pooler's server connections for the database (`default_pool_size`).
    ///   - configuration: more pooler settings; its `poolSize` is replaced by `poolSize`.
    /// - Throws: ``TestPgBouncerUnavailable`` when ``unavailableReason`` is not nil.
    public static func withPooler<Result: Sendable>(
        mode: EphemeralPgBouncer.PoolMode,
        database name: String = #function,
        poolSize: Int = 20,
        maximumConnections: Int = 10,
        configuration: EphemeralPgBouncer.Configuration = .init(),
        _ body: @Sendable (PoolerContext) async throws -> Result
    ) async throws -> Result {
        let server = try await serverWithEphemeral()
        let database = TestDatabase.uniqueName(name)
        try await TestDatabase.withAdminConnection(server.server) { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(try SQLIdentifier(database).quoted)"), logger: TestDatabase.logger).collect()
        }
        do {
            let result = try await run(mode: mode, database: database, server: server, poolSize: poolSize, maximumConnections: maximumConnections, configuration: configuration, body)
            try? await dropDatabase(database, server: server.server)
            return result
        } catch {
            try? await dropDatabase(database, server: server.server)
            throw error
        }
    }

    /// Starts a PgBouncer in `mode` in front of the shared server and runs `body` with a running
    /// client through it to the database of `context` (from ``TestDatabase/withDatabase(_:maximumConnections:_:)``),
    /// so one test can use the database both directly (`context`) and through the pooler.
    ///
    /// - Throws: ``TestPgBouncerUnavailable`` when ``unavailableReason`` is not nil.
    public static func withPooler<Result: Sendable>(
        mode: EphemeralPgBouncer.PoolMode,
        on context: TestContext,
        poolSize: Int = 20,
        maximumConnections: Int = 10,
        configuration: EphemeralPgBouncer.Configuration = .init(),
        _ body: @Sendable (PoolerContext) async throws -> Result
    ) async throws -> Result {
        let server = try await serverWithEphemeral()
        return try await run(mode: mode, database: context.settings.database, server: server, poolSize: poolSize, maximumConnections: maximumConnections, configuration: configuration, body)
    }

    private static func serverWithEphemeral() async throws -> (server: TestDatabase.Server, ephemeral: EphemeralPostgres) {
        if let reason = unavailableReason { throw TestPgBouncerUnavailable(reason: reason) }
        let server = try await TestDatabase.server()
        guard let ephemeral = server.ephemeral else {
            throw TestPgBouncerUnavailable(reason: "the shared test server is not a throwaway one")
        }
        return (server, ephemeral)
    }

    private static func run<Result: Sendable>(
        mode: EphemeralPgBouncer.PoolMode,
        database: String,
        server: (server: TestDatabase.Server, ephemeral: EphemeralPostgres),
        poolSize: Int,
        maximumConnections: Int,
        configuration: EphemeralPgBouncer.Configuration,
        _ body: @Sendable (PoolerContext) async throws -> Result
    ) async throws -> Result {
        var configuration = configuration
        configuration.poolSize = poolSize
        let pooler = try await EphemeralPgBouncer.start(in: server.ephemeral, poolMode: mode, configuration: configuration, logger: TestDatabase.logger)
        do {
            let settings = try ConnectionSettings(url: pooler.url(database: database))
            let clientConfiguration = try settings.makeClientConfiguration(poolSize: maximumConnections)
            let client = PostgresClient(configuration: clientConfiguration, backgroundLogger: TestDatabase.backgroundLogger)
            let context = PoolerContext(
                client: client, settings: settings, directSettings: server.server.settings(database: database),
                pooler: pooler, server: server.server, logger: TestDatabase.logger
            )
            let result = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                return try await body(context)
            }
            await pooler.shutdown()
            return result
        } catch {
            await pooler.shutdown()
            throw error
        }
    }

    private static func dropDatabase(_ database: String, server: TestDatabase.Server) async throws {
        try await TestDatabase.withAdminConnection(server) { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(try SQLIdentifier(database).quoted) WITH (FORCE)"), logger: TestDatabase.logger).collect()
        }
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs the test only where ``TestPgBouncer/isAvailable``; otherwise it is reported as
    /// skipped with ``TestPgBouncer/unavailableReason``.
    public static var needsPgBouncer: Self {
        .enabled(if: TestPgBouncer.isAvailable, Comment(rawValue: TestPgBouncer.unavailableReason ?? "pgbouncer is available"))
    }
}

/// Pooler tests cannot run here; the reason says why.
public struct TestPgBouncerUnavailable: Error, CustomStringConvertible {
    /// Why.
    public let reason: String
    public var description: String { "PgBouncer tests cannot run: \(reason)" }
}

/// What a test gets from ``TestPgBouncer/withPooler(mode:database:poolSize:maximumConnections:configuration:_:)``.
public struct PoolerContext: DatabaseTestContext {
    /// A running client whose connections go through the pooler.
    public let client: PostgresClient
    /// Settings for the test's database through the pooler (`postgresql://postgres@127.0.0.1:<port>/<db>?sslmode=disable`).
    public let settings: ConnectionSettings
    /// Settings for the same database directly on the server, bypassing the pooler.
    public let directSettings: ConnectionSettings
    /// The pooler.
    public let pooler: EphemeralPgBouncer
    /// The shared server.
    public let server: TestDatabase.Server
    /// A logger.
    public let logger: Logger

    /// The pooler's mode.
    public var mode: EphemeralPgBouncer.PoolMode { pooler.poolMode }
    /// The test's database.
    public var database: String { settings.database }

    /// Opens an unpooled client connection through the pooler (close it yourself).
    public func makeConnection() async throws -> PostgresConnection {
        try await TestDatabase.makeConnection(settings: settings)
    }

    /// Opens a connection directly to the server, bypassing the pooler (close it yourself).
    public func makeDirectConnection() async throws -> PostgresConnection {
        try await TestDatabase.makeConnection(settings: directSettings)
    }
}
