import Fluent
import PostgresLocks
import PostgresNIO
import PostgresQueue
import Vapor

/// The PostgresLocks objects the service uses, made once at configuration.
struct Library: Sendable {
    /// Each tenant's document numbers (one counter row per tenant).
    let numbers: GaplessCounter
    /// The job queue (its tables in schema `jobs`).
    let queue: JobQueue

    init() throws {
        numbers = try GaplessCounter(table: "document_numbers")
        queue = try JobQueue(schema: "jobs")
    }
}

extension Application {
    private struct LibraryKey: StorageKey {
        typealias Value = Library
    }

    /// The service's ``Library``, set by `configure`.
    var library: Library {
        get {
            guard let library = storage[LibraryKey.self] else { preconditionFailure("configure(_:) sets app.library") }
            return library
        }
        set { storage[LibraryKey.self] = newValue }
    }
}

/// The library's tables, as a Fluent migration: it runs on the client Fluent shares with the
/// library, which `app.postgresLocks.use(url:)` started before any migration.
struct CreateLibraryTables: AsyncMigration {
    let library: Library
    let client: PostgresClient

    func prepare(on database: any Database) async throws {
        try await library.numbers.migrate(on: client, logger: database.logger)
        try await library.queue.migrate(on: client, logger: database.logger)
    }

    func revert(on database: any Database) async throws {}
}
