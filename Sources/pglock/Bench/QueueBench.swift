import Foundation
import Histogram
import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO
import PostgresQueue
import ServiceLifecycle

/// `pglock bench queue`: enqueue throughput (single and batch), drain throughput of no-op
/// jobs by workers, and the pickup latency of a job enqueued into an idle queue.
enum QueueBench {
    struct Report: Codable {
        var enqueueSingle: LatencyStats
        var enqueueBatch: LatencyStats
        var enqueueBatchSize: Int
        var enqueueBatchJobsPerSecond: Double
        var drainJobsPerSecond: Double
        var drainJobs: Int
        var drainSeconds: Double
        var drainWorkers: Int
        var drainConcurrency: Int
        var drainClientCPUMicrosPerJob: Double
        var pickup: LatencyStats
        /// pgbench claiming and completing batches with the same statements, no worker.
        var pgbenchDrainJobsPerSecond: Double?
        var ratioToPgbench: Double?
        /// How much the resident size grew per completed job while draining, in bytes.
        var drainResidentGrowthBytesPerJob: Double?
        /// The pool every step goes through.
        var pool: String?
    }

    struct Noop: Codable, Sendable {
        var n: Int
    }

    static func run(
        harness: BenchHarness,
        client: PostgresClient,
        batchSize: Int,
        workers: Int,
        workerConcurrency: Int,
        pgbench: PgbenchRunner?,
        drainOnly: Bool = false,
        progress: Progress
    ) async throws -> Report {
        let logger = harness.logger
        let queue = try JobQueue(schema: "pglock_bench_queue")
        try await client.checkedQuery("DROP SCHEMA IF EXISTS pglock_bench_queue CASCADE", logger: logger)
        try await queue.migrate(on: client, logger: logger)

        var single = LatencyStats(histogram: LatencyStats.emptyHistogram(), seconds: 1)
        var batched = single
        if !drainOnly {
            progress.step("enqueue, one job per call: \(harness.concurrency) producers")
            single = try await harness.measure { connection, worker, _ in
                try await queue.enqueue(try NewJob(kind: "noop", payloadJSON: #"{"n":1}"#, queue: "single"), on: client, logger: logger)
            }.stats
            progress.done(single.summary)

            progress.step("enqueue, batches of \(batchSize): \(harness.concurrency) producers")
            let batch = try NewJob(kind: "noop", payloadJSON: #"{"n":1}"#, queue: "batch")
            let jobs = Array(repeating: batch, count: batchSize)
            batched = try await harness.measure { _, _, _ in
                try await queue.enqueue(jobs, on: client, logger: logger)
            }.stats
            progress.done("\(Int(batched.opsPerSecond * Double(batchSize))) jobs/s; per batch: \(batched.summary)")
        }

        // Drain: preload enough no-op jobs for the measured time, then let workers burn them down.
        let seconds = BenchCommand.secondsOf(harness.duration)
        let preload = max(10_000, Int(60_000 * seconds))
        progress.step("drain: preloading \(preload) no-op jobs")
        try await self.preload(preload, queue: queue, client: client, logger: logger)
        progress.step("drain: \(workers) workers × \(workerConcurrency) concurrent no-op jobs for \(format(harness.duration))")
        var handlers = JobHandlers()
        handlers.register("noop") { (_: Noop, _) in }
        let workerList = try (0..<workers).map { index in
            try QueueWorker(queue: queue, client: client, handlers: handlers, configuration: .init(
                queue: "drain", concurrency: workerConcurrency, claimBatchSize: min(workerConcurrency, 1000), lease: .seconds(60),
                pollInterval: .milliseconds(100), reapInterval: .seconds(30), retention: nil, owner: "bench-\(index)"
            ), logger: logger)
        }
        let group = ServiceGroup(services: workerList, gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
        let cpuBefore = processCPUMicros()
        let residentBefore = residentBytes()
        let started = ContinuousClock.now
        let drained: Int = try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await Task.sleep(for: harness.duration)
            let done = try await client.checkedQuery("SELECT count(*)::int8 FROM \(identifier: queue.jobsTable) WHERE state = 'completed'", logger: logger).rows[0].decode(Int64.self)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return Int(done)
        }
        let elapsed = BenchCommand.secondsOf(ContinuousClock.now - started)
        let drainCPU = Double(processCPUMicros() - cpuBefore) / Double(max(drained, 1))
        let drainGrowth = residentBefore.flatMap { before in residentBytes().map { Double($0 - before) / Double(max(drained, 1)) } }
        let drainRate = Double(drained) / seconds
        progress.done("\(Int(drainRate)) jobs/s (\(drained) completed in \(format(harness.duration)), left \(preload - drained); \(String(format: "%.1f", drainCPU)) µs client CPU/job; memory growth \(bytesPerOperation(drainGrowth))/job)")

        // The same claim and completion statements run by pgbench (no handlers, no leases kept):
        // what this schema allows on this machine.
        var pgbenchRate: Double?
        if let pgbench {
            progress.step("drain by pgbench: claim \(min(workerConcurrency, 1000)) + complete them, \(workers) clients")
            try await self.preload(preload, queue: queue, client: client, logger: logger)
            let table = queue.jobsTable.quoted
            // The library's own claim text, with pgbench's values in place of the binds.
            let claim = queue.claimSQL
                .replacingOccurrences(of: "$1", with: "'drain'")
                .replacingOccurrences(of: "$2", with: "'{}'")
                .replacingOccurrences(of: "$3", with: "\(min(workerConcurrency, 1000))")
                .replacingOccurrences(of: "$4", with: "'pgbench-' || :client_id")
                .replacingOccurrences(of: "$5", with: "60000")
                .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
            let script = """
                \(claim);
                UPDATE \(table) SET state = 'completed', finished_at = now(), lease_token = NULL, lease_expires_at = NULL WHERE state = 'running' AND lease_owner = 'pgbench-' || :client_id;

                """
            _ = try await pgbench.run(script: script, clients: workers, threads: min(workers, 2), duration: max(1, Int(seconds)), variables: [:])
            let done = try await client.checkedQuery("SELECT count(*)::int8 FROM \(identifier: queue.jobsTable) WHERE state = 'completed'", logger: logger).rows[0].decode(Int64.self)
            pgbenchRate = Double(done) / seconds
            progress.done("\(Int(pgbenchRate!)) jobs/s")
        }

        if drainOnly {
            return Report(
                enqueueSingle: single, enqueueBatch: batched, enqueueBatchSize: batchSize, enqueueBatchJobsPerSecond: 0,
                drainJobsPerSecond: drainRate, drainJobs: drained, drainSeconds: elapsed, drainWorkers: workers,
                drainConcurrency: workerConcurrency, drainClientCPUMicrosPerJob: drainCPU, pickup: single,
                pgbenchDrainJobsPerSecond: pgbenchRate, ratioToPgbench: pgbenchRate.map { drainRate / max($0, 1) },
                drainResidentGrowthBytesPerJob: drainGrowth
            )
        }

        // Pickup latency: one idle worker, a job at a time, from the enqueue call to the handler.
        progress.step("pickup latency: idle worker, 200 jobs one at a time")
        let (picked, pickedContinuation) = AsyncStream<ContinuousClock.Instant>.makeStream()
        var pickupHandlers = JobHandlers()
        pickupHandlers.register("ping") { (_: Noop, _) in pickedContinuation.yield(ContinuousClock.now) }
        let listener = try QueueWorker(queue: queue, client: client, handlers: pickupHandlers, configuration: .init(
            queue: "pickup", concurrency: 4, lease: .seconds(60), pollInterval: .seconds(5), reapInterval: .seconds(30), retention: nil,
            listen: harness.settings
        ), logger: logger)
        let pickupGroup = ServiceGroup(services: [listener], gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
        var histogram = LatencyStats.emptyHistogram()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await pickupGroup.run() }
            var iterator = picked.makeAsyncIterator()
            // The first job also waits for the LISTEN connection: not measured.
            for index in 0...200 {
                let enqueued = ContinuousClock.now
                try await queue.enqueue(try NewJob(kind: "ping", payloadJSON: #"{"n":1}"#, queue: "pickup"), on: client, logger: logger)
                guard let at = await iterator.next() else { break }
                if index > 0 { histogram.recordMicros(since: enqueued, clock: ContinuousClock(), now: at) }
                // Idle again before the next one (notify debounce would otherwise fold them).
                try await Task.sleep(for: .milliseconds(5))
            }
            await pickupGroup.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        let pickup = LatencyStats(histogram: histogram, seconds: 1)
        progress.done("p50 \(pickup.p50Micros) µs, p99 \(pickup.p99Micros) µs")
        return Report(
            enqueueSingle: single, enqueueBatch: batched, enqueueBatchSize: batchSize,
            enqueueBatchJobsPerSecond: batched.opsPerSecond * Double(batchSize),
            drainJobsPerSecond: drainRate, drainJobs: drained, drainSeconds: elapsed, drainWorkers: workers,
            drainConcurrency: workerConcurrency, drainClientCPUMicrosPerJob: drainCPU, pickup: pickup,
            pgbenchDrainJobsPerSecond: pgbenchRate, ratioToPgbench: pgbenchRate.map { drainRate / max($0, 1) },
            drainResidentGrowthBytesPerJob: drainGrowth
        )
    }

    /// Empties the jobs table and fills it with `count` no-op jobs of queue `drain`.
    static func preload(_ count: Int, queue: JobQueue, client: PostgresClient, logger: Logger) async throws {
        try await client.checkedQuery("TRUNCATE \(identifier: queue.jobsTable)", logger: logger)
        var remaining = count
        while remaining > 0 {
            let batch = min(remaining, 5_000)
            try await queue.enqueue(Array(repeating: try NewJob(kind: "noop", payloadJSON: #"{"n":1}"#, queue: "drain"), count: batch), on: client, logger: logger)
            remaining -= batch
        }
        try await client.checkedQuery("VACUUM ANALYZE \(identifier: queue.jobsTable)", logger: logger)
    }
}
