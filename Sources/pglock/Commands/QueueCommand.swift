import ArgumentParser
import Foundation
import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO
import PostgresQueue
import ServiceLifecycle

/// `pglock queue …`: look at and act on a PostgresQueue.
struct QueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Inspect and manage a PostgresQueue: stats, list, retry, cancel, purge.",
        subcommands: [Stats.self, List.self, Retry.self, Cancel.self, Purge.self, Work.self]
    )

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

        func printJSON<T: Encodable>(_ value: T) throws {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            print(String(decoding: try encoder.encode(value), as: UTF8.self))
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Jobs per queue and state, the ready backlog and its age.")
        @OptionGroup var options: Options

        func run() async throws {
            let stats = try await options.withQueue { queue, client, logger in try await queue.stats(on: client, logger: logger) }
            if options.json { return try options.printJSON(stats) }
            let states = JobState.allCases.map(\.rawValue)
            print((["queue"] + states + ["ready", "oldest ready"]).joined(separator: "\t"))
            for row in stats.queues {
                let counts = states.map { "\(row.counts[$0] ?? 0)" }
                let oldest = row.oldestReadySeconds.map { String(format: "%.1fs", $0) } ?? "-"
                print(([row.queue] + counts + ["\(row.ready)", oldest]).joined(separator: "\t"))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Jobs, newest first.")
        @OptionGroup var options: Options
        @Option(help: "Only jobs in this state (\(JobState.allCases.map(\.rawValue).joined(separator: ", "))).")
        var state: JobState?
        @Option(help: "Only jobs of this queue.")
        var queue: String?
        @Option(help: "How many.")
        var limit = 50

        func run() async throws {
            let (state, queueName, limit) = (self.state, self.queue, self.limit)
            let jobs = try await options.withQueue { queue, client, logger in
                try await queue.list(state: state, queue: queueName, limit: limit, on: client, logger: logger)
            }
            if options.json { return try options.printJSON(jobs) }
            print(["id", "queue", "kind", "state", "attempt", "run at", "last error"].joined(separator: "\t"))
            for job in jobs {
                print(["\(job.id)", job.queue, job.kind, job.state, "\(job.attempt)/\(job.maxAttempts)",
                       ISO8601DateFormatter().string(from: job.runAt), job.lastError.map { String($0.prefix(80)) } ?? ""].joined(separator: "\t"))
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a dead or cancelled job available again.")
        @OptionGroup var options: Options
        @Argument(help: "The job's id.") var id: Int64

        func run() async throws {
            try await changeOneJob(id, options: options, done: "is available again", notChanged: "is not dead or cancelled") { queue, id, client, logger in
                try await queue.retry(id: id, on: client, logger: logger)
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel an available or running job.")
        @OptionGroup var options: Options
        @Argument(help: "The job's id.") var id: Int64

        func run() async throws {
            try await changeOneJob(id, options: options, done: "cancelled", notChanged: "is not available or running") { queue, id, client, logger in
                try await queue.cancel(id: id, on: client, logger: logger)
            }
        }
    }

    /// Runs an admin action on one job and reports it; exits 1 if nothing changed.
    static func changeOneJob(
        _ id: Int64, options: Options, done: String, notChanged: String,
        _ action: @escaping @Sendable (JobQueue, Int64, PostgresClient, Logger) async throws -> Bool
    ) async throws {
        let changed = try await options.withQueue { queue, client, logger in try await action(queue, id, client, logger) }
        print(changed ? "job \(id) \(done)" : "job \(id) \(notChanged): nothing changed")
        if !changed { throw ExitCode(1) }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete jobs in the given states (default: completed, dead, cancelled).")
        @OptionGroup var options: Options
        @Option(name: .customLong("state"), help: "A state to purge (repeatable).")
        var states: [JobState] = []
        @Option(help: "Only jobs of this queue.")
        var queue: String?

        func run() async throws {
            let states = self.states.isEmpty ? JobState.finished : self.states
            let queueName = queue
            let deleted = try await options.withQueue { queue, client, logger in
                try await queue.purge(states: states, queue: queueName, on: client, logger: logger)
            }
            print("deleted \(deleted) jobs")
        }
    }

    /// A worker whose `hold` jobs never finish: for fault tests (SIGKILL mid-job).
    struct Work: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run a test worker (hidden).", shouldDisplay: false)
        @OptionGroup var options: Options
        @Option(help: "The queue.") var queue = "default"
        @Option(help: "The lease, e.g. 1s.") var lease = "30s"

        func run() async throws {
            let lease = try parseDuration(self.lease)
            let queueName = queue
            try await options.withQueue { queue, client, logger in
                var handlers = JobHandlers()
                // `hold`: announce the job on standard output, then never finish.
                handlers.register("hold") { (_: [String: String], context) in
                    FileHandle.standardOutput.write(Data("holding \(context.job.id)\n".utf8))
                    let (stream, _) = AsyncStream<Void>.makeStream()
                    for await _ in stream {}
                }
                let worker = try QueueWorker(
                    queue: queue, client: client, handlers: handlers,
                    configuration: .init(queue: queueName, concurrency: 1, lease: lease, pollInterval: .milliseconds(50)),
                    logger: logger
                )
                try await worker.run()
            }
        }
    }
}

extension JobState: ExpressibleByArgument {}
