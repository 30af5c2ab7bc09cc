import AsyncAlgorithms
import EphemeralPostgres
import Foundation
import Logging
import PostgresLocks
import PostgresNIO
import Synchronization
import Testing
import Vapor
@testable import VaporService

/// The server the tests run on: `DATABASE_URL` if set, else a throwaway PostgreSQL started
/// once for the test process (removed when the process ends). Each test gets a database of
/// its own on it.
enum TestServer {
    private static let server = Task<ConnectionSettings, any Error> {
        if let url = ProcessInfo.processInfo.environment[ConnectionSettings.urlVariable], !url.isEmpty {
            return try ConnectionSettings(url: url)
        }
        let server = try await EphemeralPostgres.start()
        // Kept for the whole process: its watchdog removes it when the process ends.
        keepAlive.withLock { $0.append(server) }
        return try ConnectionSettings(url: server.url())
    }

    private static let keepAlive = Mutex<[EphemeralPostgres]>([])

    /// Settings for a new, empty database on the test server.
    static func freshDatabase() async throws -> ConnectionSettings {
        let admin = try await server.value
        let name = "vapor_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        let logger = Logger(label: "vapor-service-tests")
        let connection = try await PostgresConnection.connect(configuration: admin.makeConnectionConfiguration(), id: 1, logger: logger)
        do {
            _ = try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(try SQLIdentifier(name).quoted)"), logger: logger).collect()
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
        var settings = admin
        settings.database = name
        return settings
    }
}

/// Runs `body` with the service configured on a fresh database, migrated and booted (its
/// worker, election and scheduler running), then shuts it down gracefully.
func withService(
    arguments: [String] = ["vapor"],
    logger: Logger? = nil,
    extraConfiguration: (Application) throws -> Void = { _ in },
    _ body: (Application) async throws -> Void
) async throws {
    let settings = try await TestServer.freshDatabase()
    let app = try await Application.make(Environment(name: "testing", arguments: arguments))
    if let logger { app.logger = logger }
    do {
        try await configure(app, settings: settings)
        try extraConfiguration(app)
        try await app.autoMigrate()
        try await app.asyncBoot()
        try await body(app)
    } catch {
        try? await app.asyncShutdown()
        throw error
    }
    try await app.asyncShutdown()
}

/// A test's own failure, with a readable message.
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` until it holds or `timeout` passes: how tests wait for the worker instead
/// of sleeping.
func waitUntil(timeout: Duration = .seconds(30), _ what: String, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    if try await condition() { return }
    for await _ in AsyncTimerSequence(interval: .milliseconds(20), clock: ContinuousClock()) {
        try Task.checkCancellation()
        if try await condition() { return }
        guard ContinuousClock.now < deadline else { break }
    }
    throw TestFailure("timed out after \(timeout) waiting until \(what)")
}

/// Log lines kept for a test to read.
final class CapturedLogs: Sendable {
    private let lines = Mutex<[(Logger.Level, String, Logger.Metadata)]>([])

    func append(_ level: Logger.Level, _ message: String, _ metadata: Logger.Metadata) {
        lines.withLock { $0.append((level, message, metadata)) }
    }

    func contains(level: Logger.Level, _ text: String) -> Bool {
        lines.withLock { $0.contains { $0.0 == level && $0.1.contains(text) } }
    }

    /// A logger that keeps its lines here (notice and above).
    func logger() -> Logger {
        Logger(label: "vapor-service-tests") { _ in CapturingHandler(logs: self) }
    }
}

private struct CapturingHandler: LogHandler {
    let logs: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .notice

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        logs.append(event.level, "\(event.message)", metadata.merging(event.metadata ?? [:]) { $1 })
    }
}
