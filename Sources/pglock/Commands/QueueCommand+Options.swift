import ArgumentParser
import Foundation
import Logging
import PglockHarness
import PostgresNIO
import PostgresQueue

extension QueueCommand {
    /// The environment variable that names the queue's schema when `--schema` is not given.
    static let schemaVariable = "PGLOCK_QUEUE_SCHEMA"
    /// The schema when neither `--schema` nor ``schemaVariable`` gives one (`JobQueue`'s default).
    static let defaultSchema = "pglocks_queue"

    /// Where the queue's schema came from.
    enum SchemaSource: Sendable, CustomStringConvertible {
        case option, environment, defaultValue

        var description: String {
            switch self {
            case .option: return "from --schema"
            case .environment: return "from \(QueueCommand.schemaVariable)"
            case .defaultValue: return "the default"
            }
        }
    }

    /// Options every queue subcommand takes.
    struct Options: ParsableArguments {
        @Option(help: ArgumentHelp(
            "The schema holding the queue's tables (default: $\(QueueCommand.schemaVariable), else \(QueueCommand.defaultSchema)).",
            discussion: "Give the schema the service's JobQueue(schema:) uses. If it holds no queue tables, the command fails and lists the schemas on the server that do.",
            valueName: "schema"
        ))
        var schema: String?

        @Flag(help: "Print JSON.")
        var json = false

        @OptionGroup var database: DatabaseOptions

        /// The schema to use and where it came from: `--schema`, else `PGLOCK_QUEUE_SCHEMA`
        /// (when set and not empty), else `pglocks_queue`.
        func resolvedSchema(environment: [String: String] = ProcessInfo.processInfo.environment) -> (name: String, source: SchemaSource) {
            if let schema { return (schema, .option) }
            if let fromEnvironment = environment[QueueCommand.schemaVariable], !fromEnvironment.isEmpty { return (fromEnvironment, .environment) }
            return (QueueCommand.defaultSchema, .defaultValue)
        }

        /// Runs `body` with a client on the server given by --database-url / DATABASE_URL, once
        /// the queue's tables are found in the schema; otherwise throws ``QueueSchemaError``.
        func withQueue<T: Sendable>(_ body: @Sendable (JobQueue, PostgresClient, Logger) async throws -> T) async throws -> T {
            let (name, source) = resolvedSchema()
            let queue = try JobQueue(schema: name)
            let logger = makeLogger("pglock.queue")
            return try await database.choice.withExplicitClient(maximumConnections: 4, applicationName: "pglock queue", purpose: "the queue lives on your server") { client in
                let installed = try await JobQueue.installedSchemas(on: client, logger: logger)
                guard installed.contains(queue.schema.name) else {
                    throw QueueSchemaError(code: .queueTablesMissing, schema: name, source: source, installedSchemas: installed)
                }
                return try await body(queue, client, logger)
            }
        }

        /// What `read` finds, for the text form; nil once printed as JSON with `--json`.
        func show<T: Encodable & Sendable>(_ read: @Sendable (JobQueue, PostgresClient, Logger) async throws -> T) async throws -> T? {
            let value = try await withQueue(read)
            if json {
                try printJSON(value)
                return nil
            }
            return value
        }
    }

    /// The options and the queue argument of subcommands that act on one queue.
    struct NamedQueue: ParsableArguments {
        @OptionGroup var options: Options
        @Argument(help: "The queue.") var queue: String

        /// Runs `body` with the job queue, this queue's name, a client and a logger.
        func withQueue<T: Sendable>(_ body: @escaping @Sendable (JobQueue, String, PostgresClient, Logger) async throws -> T) async throws -> T {
            let name = queue
            return try await options.withQueue { queue, client, logger in try await body(queue, name, client, logger) }
        }

        /// Runs `action` on this queue, then prints "queue <name><done>".
        func change(_ done: String, _ action: @escaping @Sendable (JobQueue, String, PostgresClient, Logger) async throws -> Void) async throws {
            try await withQueue(action)
            print("queue \(queue)\(done)")
        }
    }

    /// The options and the job-id argument of subcommands that act on one job.
    struct OneJob: ParsableArguments {
        @OptionGroup var options: Options
        @Argument(help: "The job's id.") var id: Int64

        /// Runs an admin action on the job and reports it; exits 1 if nothing changed.
        func change(
            done: String, notChanged: String,
            _ action: @escaping @Sendable (JobQueue, Int64, PostgresClient, Logger) async throws -> Bool
        ) async throws {
            let id = self.id
            let changed = try await options.withQueue { queue, client, logger in try await action(queue, id, client, logger) }
            print(changed ? "job \(id) \(done)" : "job \(id) \(notChanged): nothing changed")
            if !changed { throw ExitCode(1) }
        }
    }
}
