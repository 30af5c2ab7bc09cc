import AsyncAlgorithms
import Foundation
import Logging
import PostgresLocks
@testable import InvoiceService

/// What the database-backed tests need: whether `DATABASE_URL` is set, a backend on it, and
/// tenant names no earlier run has used.
enum TestDatabase {
    /// The database tests run only when `DATABASE_URL` is set; otherwise they are skipped.
    static var isConfigured: Bool {
        !(ProcessInfo.processInfo.environment[ConnectionSettings.urlVariable] ?? "").isEmpty
    }

    /// A backend on `DATABASE_URL`, logging warnings and worse.
    static func makeBackend() throws -> InvoiceBackend {
        var logger = Logger(label: "invoice-service-tests")
        logger.logLevel = .warning
        return try InvoiceBackend(settings: ConnectionSettings.fromEnvironment(ProcessInfo.processInfo.environment), logger: logger)
    }

    /// A tenant name unique to this run (the tables are shared between runs).
    static func uniqueTenant(_ prefix: String) -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}

/// A test's own failure, with a readable message.
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` until it holds or `timeout` passes: how tests wait for the worker instead
/// of sleeping.
func waitUntil(
    timeout: Duration = .seconds(30),
    pollEvery interval: Duration = .milliseconds(20),
    _ what: String,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    if try await condition() { return }
    for await _ in AsyncTimerSequence(interval: interval, clock: ContinuousClock()) {
        try Task.checkCancellation()
        if try await condition() { return }
        guard ContinuousClock.now < deadline else { break }
    }
    try Task.checkCancellation()
    throw TestFailure("timed out after \(timeout) waiting until \(what)")
}
