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
        var enqueueSingle, enqueueBatch: LatencyStats
        var enqueueBatchSize: Int
        var enqueueBatchJobsPerSecond: Double
        /// The drain: jobs completed per second, how many in how long, by how many workers
        /// running how many jobs at once each, and the client CPU it took per job.
        var drainJobsPerSecond: Double
        var drainJobs, drainWorkers, drainConcurrency: Int
        var drainSeconds: Double
        var drainClientCPUMicrosPerJob: Double
        var pickup: LatencyStats
        /// pgbench claiming and completing batches with the same statements, no worker.
        var pgbenchDrainJobsPerSecond: Double?
        var ratioToPgbench: Double?
        /// How much the resident size grew per completed job while draining, in bytes.
        var drainResidentGrowthBytesPerJob: Double?
        /// The pool every step goes through.
        var pool: String?
        /// Whether a `REPEATABLE READ` transaction held one snapshot open for the whole drain.
        var drainHeldSnapshot: Bool = false
        /// Dead tuples in the jobs table after the drain (`pg_stat_user_tables`).
        var drainDeadTuples: Int64?
        /// Jobs per bulk enqueue call in the COPY/unnest comparison.
        var bulkSize: Int?
        /// Jobs per second through one `unnest` statement per call (median of the rounds).
        var bulkUnnestJobsPerSecond: Double?
        /// Jobs per second through `COPY … FROM STDIN` (median of the rounds, interleaved with unnest).
        var bulkCopyJobsPerSecond: Double?
        /// Claim-and-complete latency (one job per claim) with an empty history, then with
        /// ``historyJobs`` finished jobs in the table.
        var claimEmptyHistory: LatencyStats?
        var claimWithHistory: LatencyStats?
        var historyJobs: Int?
    }

    /// What to measure besides the defaults.
    struct Extras: Sendable {
        /// Hold a snapshot open (a `REPEATABLE READ` transaction) for the whole drain.
        var holdSnapshot = false
        /// Finished jobs to put in the history before measuring claim latency again (0: skip).
        var history = 0
        /// Jobs per call in the COPY/unnest comparison (0: skip).
        var bulkSize = 50_000
        /// How often the drain workers run their maintenance.
        var reapInterval: Duration = .seconds(30)
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
        extras: Extras = Extras(),
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

        var bulk: (unnest: Double, copy: Double)?
        if !drainOnly, extras.bulkSize > 0 {
            bulk = try await measureBulk(size: extras.bulkSize, queue: queue, client: client, logger: logger, progress: progress)
        }

        // Drain: preload enough no-op jobs for the measured time, then let workers burn them down.
        let measuredSeconds = seconds(harness.duration)
        let preload = max(10_000, Int(60_000 * measuredSeconds))
        progress.step("drain: preloading \(preload) no-op jobs")
        try await self.preload(preload, queue: queue, client: client, logger: logger)
        progress.step("drain: \(workers) workers × \(workerConcurrency) concurrent no-op jobs for \(format(harness.duration))")
        var handlers = JobHandlers()
        handlers.register("noop") { (_: Noop, _) in }
        let workerList = try (0..<workers).map { index in
            try QueueWorker(queue: queue, client: client, handlers: handlers, configuration: .init(
                queue: "drain", concurrency: workerConcurrency, claimBatchSize: min(workerConcurrency, 1000), lease: .seconds(60),
                pollInterval: .milliseconds(100), reapInterval: extras.reapInterval, retention: nil, owner: "bench-\(index)"
            ), logger: logger)
        }
        // A transaction that keeps one old snapshot for the whole drain: no dead tuple the
        // drain leaves can be removed or hinted dead until it ends.
        let snapshotHolder = extras.holdSnapshot ? try await SnapshotHolder.open(settings: harness.settings, logger: logger) : nil
        let cpuBefore = processCPUMicros()
        let residentBefore = residentBytes()
        let started = ContinuousClock.now
        let drained = try await withRunningServices(workerList, logger: logger) {
            try await Task.sleep(for: harness.duration)
            return try await completedJobs(queue: queue, client: client, logger: logger)
        }
        let elapsed = seconds(ContinuousClock.now - started)
        try await snapshotHolder?.close()
        let deadTuples = try await deadTuples(queue: queue, client: client, logger: logger)
        let drainCPU = Double(processCPUMicros() - cpuBefore) / Double(max(drained, 1))
        let drainGrowth = residentBefore.flatMap { before in residentBytes().map { Double($0 - before) / Double(max(drained, 1)) } }
        let drainRate = Double(drained) / measuredSeconds
        progress.done("\(Int(drainRate)) jobs/s (\(drained) completed in \(format(harness.duration)), left \(preload - drained); \(String(format: "%.1f", drainCPU)) µs client CPU/job; memory growth \(bytesPerOperation(drainGrowth))/job; \(deadTuples.map(String.init) ?? "?") dead tuples\(extras.holdSnapshot ? ", snapshot held" : ""))")

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
            // The library's own completion text, completing what this client holds.
            let mine = "FROM \(table) WHERE state = 'running' AND lease_owner = 'pgbench-' || :client_id"
            let complete = queue.completeSQL
                .replacingOccurrences(of: "$1::int8[]", with: "ARRAY(SELECT id \(mine) ORDER BY id)")
                .replacingOccurrences(of: "$2::uuid[]", with: "ARRAY(SELECT lease_token \(mine) ORDER BY id)")
                .replacingOccurrences(of: "$3::text[]", with: "ARRAY(SELECT '' \(mine) ORDER BY id)")
                .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
            let script = """
                \(claim);
                \(complete);

                """
            _ = try await pgbench.run(script: script, clients: workers, duration: harness.duration, variables: [:])
            pgbenchRate = Double(try await completedJobs(queue: queue, client: client, logger: logger)) / measuredSeconds
            progress.done("\(Int(pgbenchRate!)) jobs/s")
        }

        // Pickup latency and claims against a history: not measured with --drain-only.
        var pickup = single
        var history: (empty: LatencyStats, full: LatencyStats)?
        if !drainOnly {
            pickup = try await measurePickup(harness: harness, queue: queue, client: client, progress: progress)
            if extras.history > 0 {
                history = try await measureHistory(extras.history, harness: harness, queue: queue, client: client, progress: progress)
            }
        }
        return Report(
            enqueueSingle: single, enqueueBatch: batched, enqueueBatchSize: batchSize,
            enqueueBatchJobsPerSecond: drainOnly ? 0 : batched.opsPerSecond * Double(batchSize),
            drainJobsPerSecond: drainRate, drainJobs: drained, drainWorkers: workers, drainConcurrency: workerConcurrency,
            drainSeconds: elapsed, drainClientCPUMicrosPerJob: drainCPU, pickup: pickup,
            pgbenchDrainJobsPerSecond: pgbenchRate, ratioToPgbench: pgbenchRate.map { drainRate / max($0, 1) },
            drainResidentGrowthBytesPerJob: drainGrowth, drainHeldSnapshot: extras.holdSnapshot, drainDeadTuples: deadTuples,
            bulkSize: bulk == nil ? nil : extras.bulkSize, bulkUnnestJobsPerSecond: bulk?.unnest, bulkCopyJobsPerSecond: bulk?.copy,
            claimEmptyHistory: history?.empty, claimWithHistory: history?.full, historyJobs: history == nil ? nil : extras.history
        )
    }

    /// Pickup latency: one idle worker, a job at a time, from the enqueue call to the handler.
    static func measurePickup(harness: BenchHarness, queue: JobQueue, client: PostgresClient, progress: Progress) async throws -> LatencyStats {
        let logger = harness.logger
        progress.step("pickup latency: idle worker, 200 jobs one at a time")
        let (picked, pickedContinuation) = AsyncStream<ContinuousClock.Instant>.makeStream()
        var pickupHandlers = JobHandlers()
        pickupHandlers.register("ping") { (_: Noop, _) in pickedContinuation.yield(ContinuousClock.now) }
        let listener = try QueueWorker(queue: queue, client: client, handlers: pickupHandlers, configuration: .init(
            queue: "pickup", concurrency: 4, lease: .seconds(60), pollInterval: .seconds(5), reapInterval: .seconds(30), retention: nil,
            listen: harness.settings
        ), logger: logger)
        let histogram = try await withRunningServices([listener], logger: logger) {
            var histogram = LatencyStats.emptyHistogram()
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
            return histogram
        }
        let pickup = LatencyStats(histogram: histogram, seconds: 1)
        progress.done("p50 \(pickup.p50Micros) µs, p99 \(pickup.p99Micros) µs")
        return pickup
    }

    /// Enqueues `size` jobs per call through the unnest statement and through COPY, five
    /// rounds each, interleaved; returns the median jobs per second of each.
    static func measureBulk(size: Int, queue: JobQueue, client: PostgresClient, logger: Logger, progress: Progress) async throws -> (unnest: Double, copy: Double) {
        progress.step("bulk enqueue of \(size) jobs per call: unnest statement vs COPY, 5 rounds each, interleaved")
        let jobs = try (0..<size).map { try NewJob(kind: "noop", payloadJSON: #"{"n":\#($0)}"#, queue: "bulk") }
        var unnest: [Double] = [], copy: [Double] = []
        for _ in 0..<5 {
            try await client.checkedQuery("TRUNCATE \(identifier: queue.jobsTable), \(identifier: queue.completedTable)", logger: logger)
            var started = ContinuousClock.now
            var offset = 0
            while offset < jobs.count {
                let end = min(offset + JobQueue.maximumBatchSize, jobs.count)
                try await queue.enqueue(Array(jobs[offset..<end]), on: client, logger: logger)
                offset = end
            }
            unnest.append(Double(size) / seconds(ContinuousClock.now - started))
            try await client.checkedQuery("TRUNCATE \(identifier: queue.jobsTable), \(identifier: queue.completedTable)", logger: logger)
            started = .now
            try await queue.enqueueByCopy(jobs, on: client, logger: logger)
            copy.append(Double(size) / seconds(ContinuousClock.now - started))
        }
        try await client.checkedQuery("TRUNCATE \(identifier: queue.jobsTable), \(identifier: queue.completedTable)", logger: logger)
        let result = (unnest: unnest.sorted()[2], copy: copy.sorted()[2])
        progress.done("unnest \(Int(result.unnest)) jobs/s, COPY \(Int(result.copy)) jobs/s (\(String(format: "%.2f", result.copy / result.unnest))×)")
        return result
    }

    /// Claim-and-complete latency of one job at a time from a queue of 1,000 available jobs,
    /// with an empty history and then with `count` finished jobs beside them.
    static func measureHistory(_ count: Int, harness: BenchHarness, queue: JobQueue, client: PostgresClient, progress: Progress) async throws -> (empty: LatencyStats, full: LatencyStats) {
        let logger = harness.logger
        func measureClaims() async throws -> LatencyStats {
            try await client.checkedQuery("DELETE FROM \(identifier: queue.jobsTable) WHERE queue = 'claims'", logger: logger)
            try await queue.enqueueByCopy(Array(repeating: try NewJob(kind: "noop", payloadJSON: #"{"n":1}"#, queue: "claims"), count: 1_000), on: client, logger: logger)
            try await client.checkedQuery("VACUUM ANALYZE \(identifier: queue.jobsTable)", logger: logger)
            return try await harness.measure { _, worker, _ in
                let claimed = try await queue.claim(from: "claims", limit: 1, lease: .seconds(60), owner: "bench-\(worker)", on: client, logger: logger)
                // Keep the queue's size: give the job back instead of finishing it.
                try await queue.giveBack(claimed.map(\.lease), on: client, logger: logger)
            }.stats
        }
        try await client.checkedQuery("TRUNCATE \(identifier: queue.jobsTable), \(identifier: queue.completedTable)", logger: logger)
        progress.step("claim + give back, one job at a time, empty history: \(harness.concurrency) clients")
        let empty = try await measureClaims()
        progress.done(empty.summary)
        progress.step("history: inserting \(count) finished jobs")
        try await client.checkedQuery("""
            INSERT INTO \(identifier: queue.completedTable) (id, queue, kind, payload, state, attempt, created_at, attempted_at, finished_at)
            SELECT nextval(pg_get_serial_sequence(\(queue.jobsTable.quoted), 'id')), 'history', 'noop', '{"n":1}', 'completed', 1, now() - interval '1 day', now() - interval '1 day', now() - interval '1 day'
            FROM generate_series(1, \(count))
            """, logger: logger)
        progress.done("inserted")
        progress.step("claim + give back, one job at a time, \(count) finished jobs in history: \(harness.concurrency) clients")
        let full = try await measureClaims()
        progress.done("\(full.summary); p99 ratio \(String(format: "%.2f", Double(full.p99Micros) / Double(max(empty.p99Micros, 1))))×")
        return (empty, full)
    }

    /// The jobs completed so far.
    static func completedJobs(queue: JobQueue, client: PostgresClient, logger: Logger) async throws -> Int {
        let query: PostgresQuery = "SELECT count(*)::int8 FROM \(identifier: queue.allJobsView) WHERE state = 'completed'"
        return Int(try await client.checkedQuery(query, logger: logger).rows[0].decode(Int64.self))
    }

    /// Dead tuples in the jobs table, once the statistics are flushed.
    static func deadTuples(queue: JobQueue, client: PostgresClient, logger: Logger) async throws -> Int64? {
        try await client.checkedQuery("""
            SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = \(queue.schema.name) AND relname = 'jobs'
            """, logger: logger).rows.first?.decode(Int64.self)
    }

    /// Empties the jobs table and fills it with `count` no-op jobs of queue `drain` (by COPY).
    static func preload(_ count: Int, queue: JobQueue, client: PostgresClient, logger: Logger) async throws {
        try await client.checkedQuery("TRUNCATE \(identifier: queue.jobsTable), \(identifier: queue.completedTable)", logger: logger)
        var remaining = count
        let job = try NewJob(kind: "noop", payloadJSON: #"{"n":1}"#, queue: "drain")
        while remaining > 0 {
            let batch = min(remaining, 200_000)
            try await queue.enqueueByCopy(Array(repeating: job, count: batch), on: client, logger: logger)
            remaining -= batch
        }
        try await client.checkedQuery("VACUUM ANALYZE \(identifier: queue.jobsTable)", logger: logger)
    }
}

extension QueueBench.Report {
    /// Prints the report as text.
    func printText(concurrency: Int) {
        print("scenario queue")
        print("  enqueue, 1 job per call (\(concurrency) producers): \(enqueueSingle.summary)")
        print("  enqueue, batches of \(enqueueBatchSize): \(Int(enqueueBatchJobsPerSecond)) jobs/s; per batch p50 \(enqueueBatch.p50Micros) µs, p99 \(enqueueBatch.p99Micros) µs")
        print("  drain (\(drainWorkers) workers × \(drainConcurrency)): \(Int(drainJobsPerSecond)) jobs/s; client CPU \(String(format: "%.1f", drainClientCPUMicrosPerJob)) µs/job")
        if let rate = pgbenchDrainJobsPerSecond, let ratio = ratioToPgbench {
            print("  drain by pgbench, same claim + complete SQL (\(drainWorkers) clients): \(Int(rate)) jobs/s; ratio ours/pgbench \(String(format: "%.2f", ratio))×")
        }
        print("  pickup latency (idle queue): p50 \(pickup.p50Micros) µs, p90 \(pickup.p90Micros) µs, p99 \(pickup.p99Micros) µs")
        if let unnest = bulkUnnestJobsPerSecond, let copy = bulkCopyJobsPerSecond, let size = bulkSize {
            print("  bulk enqueue of \(size) per call: unnest \(Int(unnest)) jobs/s, COPY \(Int(copy)) jobs/s (\(String(format: "%.2f", copy / unnest))×)")
        }
        print("  drain dead tuples afterwards: \(drainDeadTuples.map(String.init) ?? "?")\(drainHeldSnapshot ? " (a snapshot was held open for the whole drain)" : "")")
        if let empty = claimEmptyHistory, let full = claimWithHistory, let count = historyJobs {
            print("  claim + give back, empty history: p50 \(empty.p50Micros) µs, p99 \(empty.p99Micros) µs; with \(count) finished jobs: p50 \(full.p50Micros) µs, p99 \(full.p99Micros) µs (p99 ratio \(String(format: "%.2f", Double(full.p99Micros) / Double(max(empty.p99Micros, 1))))×)")
        }
        print("  pool: \(pool ?? "?")")
        print("  memory growth: enqueue \(bytesPerOperation(enqueueSingle.residentGrowthBytesPerOperation)) per call, batch enqueue \(bytesPerOperation(enqueueBatch.residentGrowthBytesPerOperation)) per batch, drain \(bytesPerOperation(drainResidentGrowthBytesPerJob)) per job")
        print("  peak memory: \(String(format: "%.0f", peakMemoryMegabytes())) MiB")
    }
}
