import Foundation
import PostgresLocksTestSupport
import PostgresQueue
import Subprocess
import Testing
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// `pglock queue …` finds the queue's schema from `--schema`, else `PGLOCK_QUEUE_SCHEMA`, else
/// `pglocks_queue`, and says so when the tables are not there.
@Suite("pglock queue: the schema")
struct QueueSchemaCommandTests {
    private func pglock(_ arguments: [String], environment: [Environment.Key: String?]) async throws -> (succeeded: Bool, output: String, error: String) {
        var variables: [Environment.Key: String?] = ["DATABASE_URL": nil, "PGLOCK_LOG_LEVEL": nil, "PGLOCK_QUEUE_SCHEMA": nil]
        variables.merge(environment) { $1 }
        let result = try await withinTimeLimit(.seconds(60), "pglock \(arguments.prefix(2).joined(separator: " "))") { [variables] in
            try await Subprocess.run(
                .path(FilePath(try pglockExecutable())), arguments: Arguments(arguments),
                environment: .inherit.updating(variables),
                input: .none, output: .string(limit: 1 << 20), error: .string(limit: 1 << 20)
            )
        }
        return (result.terminationStatus.isSuccess, result.standardOutput, result.standardError)
    }

    @Test func theSchemaComesFromTheOptionElseTheEnvironmentAndAMissingOneListsThoseThatExist() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            // The docs' example: JobQueue(schema: "jobs").
            let queue = try JobQueue(schema: "jobs")
            try await queue.migrate(on: db.client, logger: db.logger)
            try await queue.enqueue(try NewJob(kind: "send-email", payloadJSON: "{}"), on: db.client, logger: db.logger)
            // A look-alike that is not a queue: a `jobs` and a `migrations` table without the
            // queue's columns.
            try await db.query("CREATE SCHEMA lookalike")
            try await db.query("CREATE TABLE lookalike.jobs (id int)")
            try await db.query("CREATE TABLE lookalike.migrations (version int)")
            #expect(try await JobQueue.installedSchemas(on: db.client, logger: db.logger) == ["jobs"])
            #expect(try await queue.isInstalled(on: db.client, logger: db.logger))
            #expect(try await !JobQueue().isInstalled(on: db.client, logger: db.logger))

            let url = db.settings.redactedURL
            // PGLOCK_QUEUE_SCHEMA names the schema.
            let fromEnvironment = try await pglock(["queue", "stats", "--database-url", url], environment: ["PGLOCK_QUEUE_SCHEMA": "jobs"])
            #expect(fromEnvironment.succeeded, "\(fromEnvironment.error)")
            #expect(fromEnvironment.output.contains("default\t"), "\(fromEnvironment.output)")
            // --schema wins over the variable.
            let fromOption = try await pglock(["queue", "stats", "--json", "--database-url", url, "--schema", "jobs"], environment: ["PGLOCK_QUEUE_SCHEMA": "elsewhere"])
            #expect(fromOption.succeeded, "\(fromOption.error)")
            #expect(fromOption.output.contains("\"default\""), "\(fromOption.output)")

            // The default schema holds nothing: the error says how to choose and what exists.
            let missing = try await pglock(["queue", "stats", "--database-url", url], environment: [:])
            #expect(!missing.succeeded)
            #expect(!missing.error.contains("does not exist"), "\(missing.error)")
            for phrase in ["no queue tables in schema pglocks_queue (the default)", "--schema", "PGLOCK_QUEUE_SCHEMA", "Schemas on this server with queue tables: jobs.", "queueTablesMissing"] {
                #expect(missing.error.contains(phrase), "\(phrase) missing from: \(missing.error)")
            }
            #expect(!missing.error.contains("lookalike"), "\(missing.error)")

            // A schema named by the variable that is not there says where it came from.
            let wrongVariable = try await pglock(["queue", "list", "--database-url", url], environment: ["PGLOCK_QUEUE_SCHEMA": "nope"])
            #expect(!wrongVariable.succeeded)
            #expect(wrongVariable.error.contains("no queue tables in schema nope (from PGLOCK_QUEUE_SCHEMA)"), "\(wrongVariable.error)")
        }
    }

    @Test func aServerWithoutQueuesSaysNoneWereFound() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 2) { db in
            let missing = try await pglock(["queue", "stats", "--database-url", db.settings.redactedURL, "--schema", "jobs"], environment: [:])
            #expect(!missing.succeeded)
            #expect(missing.error.contains("no queue tables in schema jobs (from --schema)"), "\(missing.error)")
            #expect(missing.error.contains("No schema on this server holds queue tables"), "\(missing.error)")
        }
    }
}
