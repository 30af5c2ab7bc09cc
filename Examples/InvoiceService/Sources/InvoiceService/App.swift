import Foundation
import Hummingbird
import Logging
import PostgresLocks
import ServiceLifecycle

/// The entry point: reads `DATABASE_URL` (or the `PG*` variables), `HOST`, `PORT` and
/// `LOG_LEVEL`, then runs the application in one service group until SIGTERM or SIGINT, and
/// shuts down gracefully.
@main
struct App {
    static func main() async throws {
        let environment = ProcessInfo.processInfo.environment
        var logger = Logger(label: "invoice-service")
        logger.logLevel = environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info

        let settings = try ConnectionSettings.fromEnvironment(environment)
        let host = environment["HOST"] ?? "127.0.0.1"
        let portText = environment["PORT"] ?? "8080"
        guard let port = Int(portText), (0...65535).contains(port) else {
            logger.critical("PORT must be a number from 0 to 65535", metadata: ["PORT": "\(portText)"])
            exit(64)
        }

        let backend = try InvoiceBackend(settings: settings, logger: logger)
        let app = try backend.makeApplication(
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "InvoiceService")
        )
        logger.info("starting", metadata: ["database": "\(settings)", "address": "\(host):\(port)"])
        // The application is itself a service group: the PostgresClient, the worker and the
        // HTTP server. This outer group turns SIGTERM and SIGINT into a graceful shutdown.
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [app],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        logger.info("stopped")
    }
}
