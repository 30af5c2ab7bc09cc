import Foundation
import Logging
import PostgresLocks
import PostgresLocksVapor
import ServiceLifecycle
import Testing
import Vapor
import VaporTesting
@testable import VaporService

/// The library's services run in Vapor's lifecycle: they start when the application boots to
/// serve (not for `migrate`), a service that stops is logged at once while the application goes
/// on serving, and shutdown stops them gracefully.
@Suite("Services in Vapor's lifecycle")
struct LifecycleTests {
    private struct Broken: Error, CustomStringConvertible {
        var description: String { "the mail server refused us" }
    }

    /// A service that fails once the test lets it.
    private struct FailingService: Service {
        let gate: AsyncStream<Void>
        func run() async throws {
            for await _ in gate { throw Broken() }
        }
    }

    @Test func aServiceThatFailsIsLoggedAtOnceAndTheApplicationGoesOnServing() async throws {
        let logs = CapturedLogs()
        let (gate, open) = AsyncStream<Void>.makeStream()
        try await withService(logger: logs.logger(), extraConfiguration: { app in
            try app.postgresLocks.run(FailingService(gate: gate))
        }) { app in
            #expect(app.postgresLocks.servicesStarted)
            open.yield()
            try await waitUntil("the failure is logged") {
                logs.contains(level: .error, "a PostgresLocks service stopped with an error")
            }
            // Still serving, and the other services still run: a new document gets indexed.
            let response = try await app.testing().performTest(request: TestingHTTPRequest(
                method: .GET, url: URI(path: "/tenants/acme/documents"), headers: [:], body: ByteBuffer()
            ))
            #expect(response.status == .ok)
        }
    }

    @Test func theMigrateCommandStartsNoServices() async throws {
        try await withService(arguments: ["vapor", "migrate"]) { app in
            #expect(!app.postgresLocks.servicesStarted)
        }
    }
}
