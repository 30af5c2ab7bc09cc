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
        abstract: "Inspect and manage a PostgresQueue: stats, list, retry, cancel, purge, pause, resume, limits, schedules.",
        discussion: """
        Every subcommand acts on the queue whose tables are in --schema, else in the schema named \
        by the environment variable \(QueueCommand.schemaVariable), else in \(QueueCommand.defaultSchema) \
        (the default of JobQueue(schema:)), on the server given by --database-url (required \
        unless $DATABASE_URL is set). If that schema holds no queue tables, the command fails \
        and lists the schemas on the server that do.
        """,
        subcommands: [
            Stats.self, List.self, Retry.self, Cancel.self, Purge.self, Pause.self, Resume.self, Concurrency.self,
            Limit.self, Unlimit.self, Control.self, Schedules.self, Work.self,
        ]
    )

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Jobs per queue and state, the ready backlog and its age.")
        @OptionGroup var options: Options

        func run() async throws {
            guard let stats = try await options.show({ try await $0.stats(on: $1, logger: $2) }) else { return }
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
            guard let jobs = try await options.show({ try await $0.list(state: state, queue: queueName, limit: limit, on: $1, logger: $2) }) else { return }
            print(["id", "queue", "kind", "state", "attempt", "run at", "last error"].joined(separator: "\t"))
            for job in jobs {
                print(["\(job.id)", job.queue, job.kind, job.state, "\(job.attempt)/\(job.maxAttempts)",
                       ISO8601DateFormatter().string(from: job.runAt), job.lastError.map { String($0.prefix(80)) } ?? ""].map(\.terminalSafe).joined(separator: "\t"))
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a dead or cancelled job available again.")
        @OptionGroup var job: OneJob

        func run() async throws {
            try await job.change(done: "is available again", notChanged: "is not dead or cancelled") { try await $0.retry(id: $1, on: $2, logger: $3) }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel an available or running job; the worker running it cancels its task at once."
        )
        @OptionGroup var job: OneJob

        func run() async throws {
            try await job.change(done: "cancelled", notChanged: "is not available or running") { try await $0.cancel(id: $1, on: $2, logger: $3) }
        }
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

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pause a queue: no worker claims from it until it is resumed (running jobs go on)."
        )
        @OptionGroup var target: NamedQueue

        func run() async throws {
            try await target.change(" paused") { try await $0.pause($1, on: $2, logger: $3) }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused queue; listening workers claim at once.")
        @OptionGroup var target: NamedQueue

        func run() async throws {
            try await target.change(" resumed") { try await $0.resume($1, on: $2, logger: $3) }
        }
    }

    struct Concurrency: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set how many jobs each worker of a queue runs at once ('default': each worker's own setting)."
        )
        @OptionGroup var target: NamedQueue
        @Argument(help: "Jobs per worker, or 'default'.") var concurrency: String

        func run() async throws {
            let value: Int?
            if concurrency == "default" {
                value = nil
            } else if let number = Int(concurrency) {
                value = number
            } else {
                throw ValidationError("concurrency must be a number or 'default'; found \(concurrency)")
            }
            try await target.change(": concurrency \(value.map(String.init) ?? "as each worker is configured")") {
                try await $0.setConcurrency(value, of: $1, on: $2, logger: $3)
            }
        }
    }

    struct Limit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Limit a queue, or one kind in it, across every worker: at most N running, at most N starts per period."
        )
        @OptionGroup var target: NamedQueue
        @Option(help: "Only this kind (default: the queue as a whole).") var kind: String?
        @Option(help: "At most this many running at once.") var maxRunning: Int?
        @Option(help: "A rate: N/period, e.g. 10/1s or 100/1m.") var rate: String?

        func run() async throws {
            var parsedRate: JobLimits.Rate?
            if let rate {
                let parts = rate.split(separator: "/", maxSplits: 1).map(String.init)
                guard parts.count == 2, let starts = Int(parts[0]) else {
                    throw ValidationError("a rate is N/period, e.g. 10/1s; found \(rate)")
                }
                parsedRate = JobLimits.Rate(starts, per: try parseDuration(parts[1]))
            }
            let limits = JobLimits(kind: kind, maxRunning: maxRunning, rate: parsedRate)
            try await target.change("\(kind.map { " kind \($0)" } ?? ""): limits set") { try await $0.setLimits(limits, queue: $1, on: $2, logger: $3) }
        }
    }

    struct Unlimit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lift the limits on a queue, or on one kind in it.")
        @OptionGroup var target: NamedQueue
        @Option(help: "Only this kind (default: the queue-wide limits).") var kind: String?

        func run() async throws {
            let kind = self.kind
            try await target.change("\(kind.map { " kind \($0)" } ?? ""): limits lifted") { try await $0.removeLimits(queue: $1, kind: kind, on: $2, logger: $3) }
        }
    }

    struct Control: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a queue's runtime settings: paused, concurrency, limits.")
        @OptionGroup var target: NamedQueue

        func run() async throws {
            let name = target.queue
            guard let control = try await target.options.show({ try await $0.control(of: name, on: $1, logger: $2) }) else { return }
            print("queue \(control.queue): \(control.paused ? "paused" : "running"), concurrency \(control.concurrency.map(String.init) ?? "as configured")")
            for limit in control.limits {
                var parts: [String] = []
                if let maxRunning = limit.maxRunning { parts.append("at most \(maxRunning) running") }
                if let rate = limit.rate { parts.append("at most \(rate.starts) starts per \(rate.period)") }
                print("  \(limit.kind.map { "kind \($0)" } ?? "whole queue"): \(parts.joined(separator: ", "))")
            }
        }
    }

    struct Schedules: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Periodic schedules with their last and next runs, as the scheduler's leader recorded them.")
        @OptionGroup var options: Options

        func run() async throws {
            guard let schedules = try await options.show({ try await $0.schedules(on: $1, logger: $2) }) else { return }
            guard !schedules.isEmpty else {
                print("no schedules recorded in schema \(options.resolvedSchema().name) (a JobScheduler's leader records them when it starts leading)")
                return
            }
            let style = Date.ISO8601FormatStyle()
            print(["name", "schedule", "queue", "kind", "missed ticks", "last run", "next run", "last job", "term"].joined(separator: "\t"))
            for schedule in schedules {
                let last = schedule.lastTick.map { style.format($0) } ?? "-"
                let next = schedule.nextTick.map { style.format($0) } ?? "-"
                let job = schedule.lastJobID.map(String.init) ?? "-"
                let term = schedule.term.map(String.init) ?? "-"
                let fields: [String] = [schedule.name, schedule.schedule, schedule.queue, schedule.kind, schedule.missedTicks, last, next, job, term]
                print(fields.map(\.terminalSafe).joined(separator: "\t"))
            }
        }
    }

    /// A worker whose `hold` jobs never finish: for fault tests (SIGKILL mid-job).
    struct Work: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run a test worker (hidden).", shouldDisplay: false)
        @OptionGroup var options: Options
        @Option(help: "The queue.") var queue = "default"
        @Option(help: "The lease, e.g. 1s.") var lease = "30s"
        @Option(help: "Jobs run at once.") var concurrency = 1
        @Flag(help: "Listen for wake-ups and control messages on a dedicated connection.") var listen = false

        func run() async throws {
            let lease = try parseDuration(self.lease)
            let (queueName, concurrency) = (queue, self.concurrency)
            let listenSettings = listen ? try options.database.choice.explicitSettings() : nil
            try await options.withQueue { queue, client, logger in
                var handlers = JobHandlers()
                // `sleep`: wait `ms` milliseconds, then complete.
                handlers.register("sleep") { (payload: [String: Int], _) in
                    try await Task.sleep(for: .milliseconds(payload["ms"] ?? 0))
                }
                // `hold`: announce the job on standard output, then never finish.
                handlers.register("hold") { (_: [String: String], context) in
                    FileHandle.standardOutput.write(Data("holding \(context.job.id)\n".utf8))
                    let (stream, _) = AsyncStream<Void>.makeStream()
                    for await _ in stream {}
                }
                let worker = try QueueWorker(
                    queue: queue, client: client, handlers: handlers,
                    configuration: .init(queue: queueName, concurrency: concurrency, lease: lease, pollInterval: .milliseconds(50), listen: listenSettings),
                    logger: logger
                )
                try await worker.run()
            }
        }
    }
}

extension JobState: ExpressibleByArgument {}
