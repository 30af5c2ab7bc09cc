import EphemeralPostgres
import Foundation
import Logging
import PostgresLocks
import PostgresNIO

/// The database server the tests share: one per test process.
///
/// With `DATABASE_URL` set, tests use that server; otherwise one ``EphemeralPostgres`` is started
/// on first use and removed when the test process exits (its watchdog sees the process end).
/// Each test gets a database of its own, so suites and tests run in parallel.
public enum TestDatabase {
    /// How to reach the shared server as an administrator.
    public struct Server: Sendable {
        /// Settings for the `postgres` maintenance database.
        public let admin: ConnectionSettings
        /// The throwaway server, if one was started (nil with `DATABASE_URL`).
        public let ephemeral: EphemeralPostgres?

        /// Settings for another database on the same server.
        public func settings(database: String) -> ConnectionSettings {
            var settings = admin
            settings.database = database
            return settings
        }
    }

    /// Settings the shared throwaway server is started with: fast (no fsync), room for many
    /// connections, and a short `deadlock_timeout` so deadlock tests finish quickly.
    public static let serverConfiguration = EphemeralPostgres.Configuration(
        maxConnections: 800,
        maxLocksPerTransaction: 128,
        disableDurability: true,
        settings: ["deadlock_timeout": "100ms", "shared_buffers": "64MB"]
    )

    private static let shared = SharedServer()

    /// The shared server, started on first use.
    public static func server() async throws -> Server {
        try await shared.get()
    }

    /// A logger for tests (warnings and above, to standard error).
    public static let logger: Logger = {
        var logger = Logger(label: "tests")
        logger.logLevel = ProcessInfo.processInfo.environment["TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        return logger
    }()

    /// A quieter logger for clients' background events (PostgresNIO warns when a lease is
    /// requested a moment before `run()` has started).
    public static let backgroundLogger: Logger = {
        var logger = Logger(label: "tests.background")
        logger.logLevel = .error
        return logger
    }()

    /// Creates a fresh database named after the test, runs `body` with a running client on it
    /// (at most `maximumConnections` connections), then drops the database.
    public static func withDatabase<Result: Sendable>(
        _ name: String = #function,
        maximumConnections: Int = 40,
        _ body: @Sendable (TestContext) async throws -> Result
    ) async throws -> Result {
        try await ServerTestSlots.withSlot {
            try await withDatabaseHoldingSlot(name, maximumConnections: maximumConnections, body)
        }
    }

    private static func withDatabaseHoldingSlot<Result: Sendable>(
        _ name: String,
        maximumConnections: Int,
        _ body: @Sendable (TestContext) async throws -> Result
    ) async throws -> Result {
        let server = try await server()
        let database = uniqueName(name)
        try await withAdminConnection(server) { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(try SQLIdentifier(database).quoted)"), logger: logger).collect()
        }
        let settings = server.settings(database: database)
        var configuration = try settings.makeClientConfiguration(poolSize: maximumConnections)
        // Tests that lease "the same connection again" must not lose it to the 2 s idle timeout
        // on a loaded machine.
        configuration.options.connectionIdleTimeout = .seconds(60)
        let client = PostgresClient(configuration: configuration, backgroundLogger: backgroundLogger)
        // The shared server is reached directly: tests that are not about the pooling probe
        // skip it (tests of the probe make clients of their own, or go through a PgBouncer).
        client.declareConnectionPooling(.sessionPerConnection, logger: logger)
        let context = TestContext(client: client, settings: settings, server: server, logger: logger)
        let result: Result
        do {
            result = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                return try await body(context)
            }
        } catch {
            try? await dropDatabase(database, server: server)
            throw error
        }
        try? await dropDatabase(database, server: server)
        return result
    }

    /// Runs `body` on a fresh connection to the maintenance database (outside any pool).
    @discardableResult
    public static func withAdminConnection<Result: Sendable>(
        _ server: Server,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await withConnection(settings: server.admin, body)
    }

    /// Runs `body` on a fresh, unpooled connection made from `settings`.
    public static func withConnection<Result: Sendable>(
        settings: ConnectionSettings,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let connection = try await makeConnection(settings: settings)
        do {
            let result = try await body(connection)
            try? await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Opens an unpooled connection (close it yourself).
    public static func makeConnection(settings: ConnectionSettings) async throws -> PostgresConnection {
        var settings = settings
        settings.applicationName = "postgres-locks-tests"
        let configuration = try settings.makeConnectionConfiguration()
        return try await PostgresConnection.connect(configuration: configuration, id: Int.random(in: 1...Int(Int32.max)), logger: logger)
    }

    private static func dropDatabase(_ database: String, server: Server) async throws {
        try await withAdminConnection(server) { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(try SQLIdentifier(database).quoted) WITH (FORCE)"), logger: logger).collect()
        }
    }

    static func uniqueName(_ testName: String) -> String {
        let cleaned = testName.lowercased().unicodeScalars.map { CharacterSet.alphanumerics.contains($0) && $0.isASCII ? Character($0) : "_" }
        let stem = String(String(cleaned).prefix(40))
        return "t_\(stem)_\(UInt32.random(in: 0...UInt32.max))"
    }
}

/// A test's view of one database reached through a running client: ``TestContext`` (direct)
/// and ``PoolerContext`` (through a PgBouncer) share these helpers.
public protocol DatabaseTestContext: Sendable {
    /// A running client on the test's database.
    var client: PostgresClient { get }
    /// A logger.
    var logger: Logger { get }
    /// Opens an unpooled connection to the test's database the way `client` reaches it (close it yourself).
    func makeConnection() async throws -> PostgresConnection
}

extension DatabaseTestContext {
    /// Runs `body` with `count` dedicated connections and closes them however it ends (a
    /// PostgresConnection dropped unclosed is a fatal assertion in debug builds).
    public func withConnections<T>(_ count: Int, _ body: ([PostgresConnection]) async throws -> T) async throws -> T {
        var connections: [PostgresConnection] = []
        do {
            for _ in 0..<count { connections.append(try await makeConnection()) }
            let result = try await body(connections)
            for connection in connections { try? await connection.close() }
            return result
        } catch {
            for connection in connections { try? await connection.close() }
            throw error
        }
    }

    /// Sends `sql` as written on `connection`, past the library (a `BEGIN`, `COMMIT` or lock
    /// statement as an ORM or a person would send it), reading all rows.
    public func send(_ sql: String, on connection: PostgresConnection) async throws {
        _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect()
    }

    /// Waits until a backend of this database whose statement matches `pattern` (SQL `LIKE`)
    /// waits on a heavyweight lock (an advisory lock a test holds, say), asking on `observer`
    /// (a connection of the test's own); returns the backend's process id.
    public func backendWaitingOnALock(runningStatementLike pattern: String, observer: PostgresConnection) async throws -> Int32 {
        let found = LockedBox<Int32?>(nil)
        try await waitUntil("a backend running \(pattern) waits on a lock") {
            let rows = try await observer.query(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE \(pattern) AND pid <> pg_backend_pid()",
                logger: logger
            ).collect()
            found.withLock { $0 = try? rows.first?.decode(Int32.self) }
            return found.value != nil
        }
        return found.value!
    }

    /// Runs one statement on the client's pool, reading all rows.
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await pooledQuery(query, on: client, logger: logger)
    }

    /// The first column of the first row, decoded.
    public func scalar<T: PostgresDecodable>(_ query: PostgresQuery, as type: T.Type = T.self) async throws -> T {
        let rows = try await self.query(query)
        guard let row = rows.first else { throw TestFailure("no row for \(query.sql)") }
        return try row.decode(T.self)
    }
}

/// What a test gets from ``TestDatabase/withDatabase(_:maximumConnections:_:)``.
public struct TestContext: DatabaseTestContext {
    /// A running client on the test's own database.
    public let client: PostgresClient
    /// Settings for the test's database (to open extra connections).
    public let settings: ConnectionSettings
    /// The shared server.
    public let server: TestDatabase.Server
    /// A logger.
    public let logger: Logger

    /// Opens an unpooled connection to the test's database (close it yourself).
    public func makeConnection() async throws -> PostgresConnection {
        try await TestDatabase.makeConnection(settings: settings)
    }
}

private actor SharedServer {
    private var task: Task<TestDatabase.Server, any Error>?

    func get() async throws -> TestDatabase.Server {
        if let task { return try await task.value }
        let task = Task { () throws -> TestDatabase.Server in
            let environment = ProcessInfo.processInfo.environment
            if let url = environment["DATABASE_URL"], !url.isEmpty {
                var settings = try ConnectionSettings(url: url, environment: environment)
                settings.database = "postgres"
                return TestDatabase.Server(admin: settings, ephemeral: nil)
            }
            let server = try await EphemeralPostgres.start(TestDatabase.serverConfiguration)
            let settings = try ConnectionSettings(url: server.url())
            return TestDatabase.Server(admin: settings, ephemeral: server)
        }
        self.task = task
        return try await task.value
    }
}

/// A test-side failure with a message.
public struct TestFailure: Error, CustomStringConvertible {
    /// What failed.
    public let description: String
    /// Creates a failure.
    public init(_ description: String) { self.description = description }
}

/// Runs one statement on `client`'s pool through the library's checked path, reading all rows.
///
/// A raw PostgresNIO query waits forever on a connection that has closed; the checked path
/// throws `connectionLost` instead, and never runs on a connection the pool handed out closed
/// (it leases another).
public func pooledQuery(_ query: PostgresQuery, on client: PostgresClient, logger: Logger) async throws -> [PostgresRow] {
    try await client.checkedQuery(query, logger: logger).rows
}
