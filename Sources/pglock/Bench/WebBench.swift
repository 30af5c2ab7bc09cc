import EphemeralPostgres
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hummingbird
import Logging
import PglockHarness
import PostgresLocks
import PostgresLocksWeb
import PostgresNIO
import PostgresQueue

/// `pglock bench web`: the console's pages on a big system: `--locks` advisory locks held (and
/// one key with a holder and two waiters), `--history` completed jobs kept, live jobs in every
/// state; each page requested `--requests` times, its server time read from `Server-Timing`.
enum WebBench {
    struct PageTiming: Codable, Sendable {
        var page: String
        var requests: Int
        var serverP50Milliseconds, serverP99Milliseconds, serverMaxMilliseconds: Double
        var clientP50Milliseconds: Double
        var bytes: Int
    }

    struct Report: Codable, Sendable {
        var locksHeld: Int
        var completedJobs: Int64
        var liveJobs: Int64
        var seedSeconds: Double
        var pages: [PageTiming]

        func printText() {
            print("web: \(locksHeld) advisory locks held, \(Format.count(completedJobs)) completed jobs kept, \(liveJobs) live jobs (seeded in \(String(format: "%.0f", seedSeconds)) s)")
            print("  page                          server p50   server p99   server max   client p50   size")
            for page in pages {
                print("  " + page.page.padding(toLength: 28, withPad: " ", startingAt: 0)
                      + String(format: "%9.1f ms %9.1f ms %9.1f ms %9.1f ms %6d kB", page.serverP50Milliseconds, page.serverP99Milliseconds,
                               page.serverMaxMilliseconds, page.clientP50Milliseconds, page.bytes / 1024))
            }
        }
    }

    enum Format {
        static func count(_ value: Int64) -> String {
            let formatter = NumberFormatter()
            formatter.numberStyle = .decimal
            return formatter.string(from: NSNumber(value: value)) ?? String(value)
        }
    }

    static let schema = "pglock_bench_web"

    static func run(client: PostgresClient, settings: ConnectionSettings, locks: Int, history: Int64, requests: Int, progress: Progress, logger: Logger) async throws -> Report {
        let queue = try JobQueue(schema: schema)
        let seedStarted = ContinuousClock.now
        try await queue.migrate(on: client, logger: logger)
        let kept = try await client.checkedQuery("SELECT count(*)::int8 FROM \(identifier: queue.completedTable)", logger: logger).rows[0].decode(Int64.self)
        if kept < history {
            progress.step("keeping \(history) completed jobs (spread over the last 30 days)")
            var from = kept + 1
            while from <= history {
                let to = min(history, from + 999_999)
                try await client.checkedQuery(seedCompletedSQL(queue, from: from, to: to, total: history), logger: logger)
                progress.done("\(to) of \(history)")
                from = to + 1
            }
            try await client.checkedQuery("SELECT setval(pg_get_serial_sequence(\(queue.jobsTable.quoted), 'id'), \(history + 1))", logger: logger)
        }
        let live = try await client.checkedQuery("SELECT count(*)::int8 FROM \(identifier: queue.jobsTable)", logger: logger).rows[0].decode(Int64.self)
        if live == 0 {
            progress.step("adding live jobs in every state")
            try await client.checkedQuery(seedLiveSQL(queue), logger: logger)
        }
        try await client.checkedQuery("ANALYZE \(identifier: queue.jobsTable)", logger: logger)
        try await client.checkedQuery("ANALYZE \(identifier: queue.completedTable)", logger: logger)
        let liveJobs = try await client.checkedQuery("SELECT count(*)::int8 FROM \(identifier: queue.jobsTable)", logger: logger).rows[0].decode(Int64.self)
        let completedJobs = max(kept, history)
        let seedSeconds = seconds(ContinuousClock.now - seedStarted)

        progress.step("holding \(locks) advisory locks on \(max(1, locks / 1000)) sessions, and one key with a holder and two waiters")
        let holders = try await openConnections(max(1, (locks + 999) / 1000) + 3, settings: settings, logger: logger)
        defer { for connection in holders { Task { try? await connection.close() } } }
        let base = Int64.random(in: (1 << 40)...(1 << 50))
        var remaining = locks
        for (index, connection) in holders.dropLast(3).enumerated() where remaining > 0 {
            let count = min(1000, remaining)
            let first = base + Int64(index) * 1000
            _ = try await connection.query("SELECT count(pg_advisory_lock(k)) FROM generate_series(\(first), \(first + Int64(count) - 1)) k", logger: logger).collect()
            remaining -= count
        }
        let contended = base - 1
        let (holder, waiterA, waiterB) = (holders[holders.count - 3], holders[holders.count - 2], holders[holders.count - 1])
        _ = try await holder.query("SELECT pg_advisory_lock(\(contended))", logger: logger).collect()
        let waits = [waiterA, waiterB].map { connection in
            Task { try? await connection.query("SELECT pg_advisory_lock(\(contended))", logger: logger).collect() }
        }
        defer {
            for wait in waits { wait.cancel() }
        }

        // Three elections with a leader each, for the leaders page.
        let elections = try (1...3).map { index in
            try LeaderElection(configuration: .init(name: "bench-scheduler-\(index)", connection: settings), logger: logger)
        }
        let console = try WebConsole(client: client, configuration: .init(queueSchemas: [schema]), logger: logger)
        let router = Router()
        console.addRoutes(to: router)
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        var serverLogger = Logger(label: "pglock.bench.web")
        serverLogger.logLevel = .critical  // the server's own shutdown notes are not the bench's business
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { portContinuation.yield($0.localAddress?.port ?? 0) }, logger: serverLogger)
        let deadJob = try await client.checkedQuery("SELECT max(id) FROM \(identifier: queue.jobsTable) WHERE state = 'dead'", logger: logger).rows[0].decode(Int64?.self) ?? 1
        let pages = ["/locks", "/queues", "/jobs", "/jobs?state=completed", "/jobs?state=dead&kind=report", "/jobs?error=timeout", "/jobs/\(deadJob)", "/jobs/\(completedJobs / 2)", "/leaders", "/doctor"]
        return try await withRunningServices(elections, logger: logger) {
          try await withThrowingTaskGroup(of: Report?.self) { group in
            group.addTask { try await app.run(); return nil }
            group.addTask {
                var iterator = ports.makeAsyncIterator()
                guard let port = await iterator.next() else { throw PostgresLocksError(code: .invalidArgument, message: "the console did not start") }
                while try await LeaderTerm.all(on: client, logger: logger).filter({ $0.lockHolderPID != nil }).count < elections.count {
                    try await Task.sleep(for: .milliseconds(20))  // the elections take their locks
                }
                progress.step("requesting each page \(requests) times")
                var timings: [PageTiming] = []
                for page in pages {
                    timings.append(try await measure(page, port: port, requests: requests))
                }
                return Report(locksHeld: locks, completedJobs: completedJobs, liveJobs: liveJobs, seedSeconds: seedSeconds, pages: timings)
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let report = result { return report }
            }
            throw PostgresLocksError(code: .invalidArgument, message: "the console stopped")
          }
        }
    }

    static func measure(_ page: String, port: Int, requests: Int) async throws -> PageTiming {
        let url = URL(string: "http://127.0.0.1:\(port)\(page)")!
        var server: [Double] = [], client: [Double] = []
        var bytes = 0
        for index in 0..<(requests + 2) {
            let started = ContinuousClock.now
            let (data, response) = try await URLSession.shared.data(from: url)
            let elapsed = seconds(ContinuousClock.now - started) * 1000
            guard let http = response as? HTTPURLResponse, http.statusCode == 200 else {
                throw PostgresLocksError(code: .invalidArgument, message: "\(page) answered \((response as? HTTPURLResponse)?.statusCode ?? 0)")
            }
            let timing = (http.value(forHTTPHeaderField: "Server-Timing") ?? "").split(separator: "=").last.flatMap { Double($0) } ?? 0
            if index >= 2 {  // two warm-up requests
                server.append(timing)
                client.append(elapsed)
                bytes = data.count
            }
        }
        server.sort()
        client.sort()
        func percentile(_ values: [Double], _ p: Double) -> Double { values[min(values.count - 1, Int((Double(values.count - 1) * p).rounded(.up)))] }
        return PageTiming(page: page, requests: requests, serverP50Milliseconds: percentile(server, 0.5), serverP99Milliseconds: percentile(server, 0.99),
                          serverMaxMilliseconds: server.last ?? 0, clientP50Milliseconds: percentile(client, 0.5), bytes: bytes)
    }

    static func openConnections(_ count: Int, settings: ConnectionSettings, logger: Logger) async throws -> [PostgresConnection] {
        var connections: [PostgresConnection] = []
        for id in 0..<count {
            connections.append(try await PostgresConnection.connect(configuration: settings.makeConnectionConfiguration(), id: id, logger: logger))
        }
        return connections
    }

    /// Completed jobs `from…to` of `total`, finished evenly over the last 30 days (the newest
    /// last), picked up a few seconds after they were due.
    static func seedCompletedSQL(_ queue: JobQueue, from: Int64, to: Int64, total: Int64) -> PostgresQuery {
        """
        INSERT INTO \(identifier: queue.completedTable) (id, queue, kind, payload, state, attempt, max_attempts, run_at, created_at, attempted_at, finished_at)
        SELECT i, CASE WHEN i % 3 = 0 THEN 'mail' ELSE 'default' END, (ARRAY['send-invoice', 'report', 'sync', 'resize'])[1 + i % 4],
               jsonb_build_object('n', i), 'completed', 1, 20, t - interval '3 seconds', t - interval '4 seconds', t - interval '1 second', t
        FROM generate_series(\(from), \(to)) i,
             LATERAL (SELECT now() - (interval '30 days') * (1 - i::float8 / \(total)::float8) AS t) times
        """
    }

    /// Live jobs: 2,000 available, 100 running, 100,000 dead with errors and 1,000 cancelled
    /// (those finished over the last 30 days).
    static func seedLiveSQL(_ queue: JobQueue) -> PostgresQuery {
        """
        INSERT INTO \(identifier: queue.jobsTable) (queue, kind, payload, state, attempt, run_at, attempted_at, finished_at, last_error, lease_owner, lease_token, lease_expires_at)
        SELECT CASE WHEN i % 3 = 0 THEN 'mail' ELSE 'default' END, (ARRAY['send-invoice', 'report', 'sync', 'resize'])[1 + i % 4], jsonb_build_object('n', i),
               s.state,
               CASE WHEN s.state IN ('available') THEN 0 ELSE 1 END,
               now() - (i % 600) * interval '1 second' - CASE WHEN s.state IN ('dead', 'cancelled') THEN (i % 43200) * interval '1 minute' ELSE interval '0' END,
               CASE WHEN s.state = 'available' THEN NULL
                    WHEN s.state = 'running' THEN now() - (i % 60) * interval '1 second'
                    ELSE now() - (i % 43200) * interval '1 minute' END,
               CASE WHEN s.state IN ('dead', 'cancelled') THEN now() - (i % 43200) * interval '1 minute' END,
               CASE WHEN s.state = 'dead' THEN 'timeout after 30 s calling the mail server (attempt ' || i || ')' END,
               CASE WHEN s.state = 'running' THEN 'bench-worker' END,
               CASE WHEN s.state = 'running' THEN gen_random_uuid() END,
               CASE WHEN s.state = 'running' THEN now() + interval '1 minute' END
        FROM (VALUES ('available', 2000), ('running', 100), ('dead', 100000), ('cancelled', 1000)) s(state, n),
             LATERAL generate_series(1, s.n) i
        """
    }
}
