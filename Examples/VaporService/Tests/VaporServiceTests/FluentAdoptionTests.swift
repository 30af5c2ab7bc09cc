import Fluent
import FluentPostgresDriver
import Foundation
import Logging
import PostgresLocks
import PostgresLocksVapor
import PostgresNIO
import Testing
import Vapor
@testable import VaporService

/// The library adopts a Fluent transaction on either driver set-up (a shared `PostgresClient`,
/// and FluentPostgresDriver's own pool), and refuses a database outside a transaction.
@Suite("Adopting Fluent transactions")
struct FluentAdoptionTests {
    /// Holders of advisory lock 77 (the service's own leader election holds another).
    private static func heldAdvisoryLocks(_ db: any Database) async throws -> Int {
        struct Count: Decodable { var count: Int }
        let sql = try #require(db as? any SQLDatabase)
        return try await sql.raw("""
            SELECT count(*)::int AS count FROM pg_locks WHERE locktype = 'advisory' AND granted
              AND classid = 0 AND objid = 77 AND objsubid = 1
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """).first(decoding: Count.self)?.count ?? -1
    }

    private struct Rollback: Error {}

    @Test(arguments: ["shared client", "driver's own pool"])
    func aLockTakenInAFluentTransactionIsHeldUntilItEndsAndItsRollbackUndoesANumber(setUp: String) async throws {
        try await withService { app in
            let database: any Database
            if setUp == "driver's own pool" {
                let settings = try await TestServer.freshDatabase()
                var configuration = SQLPostgresConfiguration(
                    coreConfiguration: try settings.makeConnectionConfiguration()
                )
                configuration.searchPath = ["public"]
                app.databases.use(.postgres(configuration: configuration), as: DatabaseID(string: "own-pool"))
                database = app.db(DatabaseID(string: "own-pool"))
                try await Self.migrateNumbers(app.library.numbers, on: settings, logger: app.logger)
            } else {
                database = app.db
            }
            let numbers = app.library.numbers
            let number = try await database.transaction { db in
                try await db.withAdoptedTransaction(logger: app.logger) { tx in
                    try await tx.advisoryLock(.int64(77))
                    return try await numbers.next(scope: "t", in: tx)
                }
            }
            #expect(number == 1)
            #expect(try await Self.heldAdvisoryLocks(database) == 0)  // released at Fluent's COMMIT
            // Held inside, until the end of Fluent's transaction; a rollback gives the number back.
            await #expect(throws: Rollback.self) {
                try await database.transaction { db in
                    let again = try await db.withAdoptedTransaction(logger: app.logger) { tx in
                        try await tx.advisoryLock(.int64(77))
                        return try await numbers.next(scope: "t", in: tx)
                    }
                    #expect(again == 2)
                    #expect(try await Self.heldAdvisoryLocks(db) == 1)  // on the transaction's own connection
                    throw Rollback()
                }
            }
            #expect(try await Self.heldAdvisoryLocks(database) == 0)
            let third = try await database.transaction { db in
                try await db.withAdoptedTransaction(logger: app.logger) { tx in try await numbers.next(scope: "t", in: tx) }
            }
            #expect(third == 2)
        }
    }

    /// Creates the counter's table in the other database, with a client of its own.
    private static func migrateNumbers(_ numbers: GaplessCounter, on settings: ConnectionSettings, logger: Logger) async throws {
        let client = PostgresClient(configuration: try settings.makeClientConfiguration(poolSize: 2), backgroundLogger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            try await numbers.migrate(on: client, logger: logger)
            group.cancelAll()
        }
    }

    @Test func anSQLKitSessionsTransactionIsAdoptedAndItsRollbackUndoesTheNumber() async throws {
        try await withService { app in
            let numbers = app.library.numbers
            let sql = try #require(app.db as? any SQLDatabase)
            for round in 1...2 {
                let number = try await sql.withSession { session in
                    try await session.raw("BEGIN").run()
                    let number = try await session.withAdoptedTransaction { tx in try await numbers.next(scope: "sqlkit", in: tx) }
                    try await session.raw(round == 1 ? "ROLLBACK" : "COMMIT").run()
                    return number
                }
                #expect(number == 1, "round \(round): the rolled-back number is given again")
            }
            // A session outside a transaction is refused.
            await #expect {
                try await sql.withSession { session in
                    try await session.withAdoptedTransaction { tx in try await numbers.next(scope: "sqlkit", in: tx) }
                }
            } throws: { ($0 as? PostgresLocksError)?.code == .notInTransaction }
        }
    }

    @Test func aDatabaseOutsideATransactionIsRefusedWithNothingRun() async throws {
        try await withService { app in
            var ran = false
            await #expect {
                try await app.db.withAdoptedTransaction { _ in ran = true }
            } throws: { ($0 as? PostgresLocksError)?.code == .notInTransaction }
            #expect(!ran)
        }
    }
}

