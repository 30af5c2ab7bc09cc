import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Testing

/// The library's sessions carry the instance in `application_name`, as the server sees it.
@Suite("Session naming")
struct SessionNamingTests {
    @Test func theDefaultApplicationNameCarriesTheInstanceInPgStatActivity() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 2) { db in
            var settings = db.settings
            settings.applicationName = nil
            let client = PostgresClient(configuration: try settings.makeClientConfiguration(poolSize: 1), backgroundLogger: TestDatabase.backgroundLogger)
            let seen = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                return try await client.query("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()", logger: db.logger)
                    .collect()[0].decode(String.self)
            }
            #expect(seen == ConnectionSettings.applicationName("postgres-locks", instance: ServiceInstance.current))
            #expect(seen.hasPrefix("postgres-locks \(ServiceInstance.current.prefix(8))"))
            #expect(seen == settings.effectiveApplicationName)

            // A name of one's own is sent as it is.
            settings.applicationName = "billing-web"
            let named = try await PostgresConnection.connect(configuration: try settings.makeConnectionConfiguration(), id: 1, logger: db.logger)
            let namedSeen = try await named.query("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()", logger: db.logger).collect()[0].decode(String.self)
            try await named.close()
            #expect(namedSeen == "billing-web")
        }
    }
}
