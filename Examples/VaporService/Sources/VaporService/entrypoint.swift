import Logging
import PostgresLocksVapor
import Vapor

/// `swift run VaporService serve` (the default command), `… migrate`, `… routes`: Vapor's
/// commands, with `DATABASE_URL` naming the server.
@main
enum Entrypoint {
    static func main() async throws {
        var env = try Environment.detect()
        try LoggingSystem.bootstrap(from: &env)
        let traceExporter = try TraceExport.bootstrap(serviceName: "vapor-service")
        let app = try await Application.make(env)
        do {
            try await configure(app)
            if let traceExporter { try app.postgresLocks.run(traceExporter) }
            try await app.execute()
        } catch {
            app.logger.report(error: error)
            try? await app.asyncShutdown()
            throw error
        }
        try await app.asyncShutdown()
    }
}
