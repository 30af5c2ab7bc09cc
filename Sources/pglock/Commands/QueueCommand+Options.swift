import ArgumentParser
import Logging
import PglockHarness
import PostgresNIO
import PostgresQueue

extension QueueCommand {
    /// Options every queue subcommand takes.
    struct Options: ParsableArguments {
        @Option(help: "The schema holding the queue's tables.")
        var schema = "pglocks_queue"

        @Flag(help: "Print JSON.")
        var json = false

        @OptionGroup var database: DatabaseOptions

        /// Runs `body` with a client on the server given by --database-url / DATABASE_URL.
        func withQueue<T: Sendable>(_ body: @Sendable (JobQueue, PostgresClient, Logger) async throws -> T) async throws -> T {
            let queue = try JobQueue(schema: schema)
            let logger = makeLogger("pglock.queue")
            return try await database.withExplicitClient(maximumConnections: 4, applicationName: "pglock queue", purpose: "the queue lives on your server") { client in
                try await body(queue, client, logger)
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
