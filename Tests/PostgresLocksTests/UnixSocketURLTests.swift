import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Testing

@Suite("Connection URLs in PostgresKit's forms")
struct UnixSocketURLTests {
    @Test func aPostgresUDSURLReachesTheServerThroughItsSocketFile() async throws {
        try await TestDatabase.withDatabase { db in
            guard case .unixSocketDirectory(let directory) = db.settings.host else {
                print("skipped: the test server is reached over TCP (DATABASE_URL), so it has no socket file here")
                return
            }
            let url = "postgres+uds://\(db.settings.user)@localhost\(directory)/.s.PGSQL.\(db.settings.port)?tlsmode=disable#\(db.settings.database)"
            let settings = try ConnectionSettings(url: url)
            let client = PostgresClient(configuration: try settings.makeClientConfiguration(poolSize: 1), backgroundLogger: db.logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                let database = try await client.checkedQuery("SELECT current_database()", logger: db.logger).rows[0].decode(String.self)
                #expect(database == db.settings.database)
                group.cancelAll()
            }
        }
    }
}
