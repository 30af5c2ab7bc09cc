import Logging
import PostgresLocks
import PostgresNIO

extension JobQueue {
    /// The schemas on the server that hold a queue's tables, by name: each has a `jobs` table
    /// with the queue's `lease_token` column and a `migrations` table beside it (what
    /// ``migrate(on:logger:)`` creates). Read from the catalog with bound names; a schema the
    /// user cannot see is not listed.
    ///
    /// ```swift
    /// let schemas = try await JobQueue.installedSchemas(on: client, logger: logger)  // ["jobs"]
    /// ```
    public static func installedSchemas(on client: PostgresClient, logger: Logger) async throws -> [String] {
        let rows = try await client.checkedQuery("""
            SELECT n.nspname::text FROM pg_namespace n
            WHERE EXISTS (
                    SELECT 1 FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                    WHERE c.relnamespace = n.oid AND c.relname = \(Self.jobsTableName) AND c.relkind IN ('r', 'p')
                      AND a.attname = \(Self.markerColumnName) AND NOT a.attisdropped
                  )
              AND EXISTS (
                    SELECT 1 FROM pg_class c
                    WHERE c.relnamespace = n.oid AND c.relname = \(Self.migrationsTableName) AND c.relkind IN ('r', 'p')
                  )
            ORDER BY n.nspname
            """, logger: logger).rows
        return try rows.map { try $0.decode(String.self) }
    }

    /// Whether this queue's tables exist in ``schema`` (see ``installedSchemas(on:logger:)``).
    public func isInstalled(on client: PostgresClient, logger: Logger) async throws -> Bool {
        try await Self.installedSchemas(on: client, logger: logger).contains(schema.name)
    }

    /// The name of the jobs table in every queue's schema.
    static let jobsTableName = "jobs"
    /// A column only the queue's jobs table has (a lease's fencing token), to tell it from
    /// other tables named `jobs`.
    static let markerColumnName = "lease_token"
    /// The name of the migrations table in every queue's schema.
    static let migrationsTableName = "migrations"
}
