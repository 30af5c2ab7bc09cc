import Foundation
import Logging
import PostgresLocks
import PostgresNIO
import PostgresQueue
import Synchronization

/// A workload that runs the library under injected faults and then checks, in the database,
/// that its promises held: mutual exclusion, gapless unique numbers, every job done exactly
/// once, every ingested key stored and handled exactly once, no lock left behind, no call hung.
///
/// It drives five kinds of work at once, each optional:
/// - **lock workers**: `withAdvisoryLock` critical sections that read a counter row and write
///   it back plus one (a lost update shows if two ever overlap), logging each operation;
/// - **counter workers**: ``GaplessCounter`` numbers from every strategy, each recorded next
///   to the number in the same transaction;
/// - **ingestion workers**: batches of business keys, many of them duplicates (across workers
///   and resends), stored through ``ExactlyOnceIngestion`` with a handler that writes one side
///   effect per new key in the same transaction; a batch a fault broke is sent again;
/// - **queue work**: jobs enqueued in batches, worked by ``QueueWorker``s whose handlers write a
///   side effect and complete the job in one transaction;
/// - **a cancellation storm**: waves of lock waits on contended keys, cancelled at random
///   moments or given short timeouts, each timed against its deadline.
///
/// Faults: a backend of the run's sessions is terminated (`pg_terminate_backend`) every
/// ``SoakConfiguration/terminateEvery`` on average, and the server can be restarted through a
/// closure. Work retries whatever a fault broke. Used by `pglock soak` and by the test suite.
package struct SoakWorkload: Sendable {
    /// Where to run: the database the run's tables are created in.
    package let settings: ConnectionSettings
    /// What to run.
    package let configuration: SoakConfiguration
    /// The `application_name` of every session of the run (faults pick victims by it).
    package let applicationName: String
    /// The schema holding the run's tables (created, and dropped afterwards unless kept).
    package let schema: SQLIdentifier
    /// The advisory-lock namespace of the run's pair keys.
    package let namespace: Int32
    package let tallies = SoakTallies()

    /// A workload on the database `settings` point to.
    package init(settings: ConnectionSettings, configuration: SoakConfiguration) throws {
        try configuration.validate()
        self.settings = settings
        self.configuration = configuration
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        self.applicationName = "pglocks-soak-\(suffix)"
        self.schema = try SQLIdentifier("pglocks_soak_\(suffix)")
        self.namespace = Int32.random(in: 1_000_000...Int32.max - 10)
    }

    /// Runs the workload for ``SoakConfiguration/duration`` under faults, lets the queue drain,
    /// checks every invariant and returns the report.
    package func run(logger: Logger) async throws -> SoakReport {
        var settings = self.settings
        settings.applicationName = applicationName
        // The library's recommended pool unless asked otherwise (`--pool fixed` shows the pool
        // PostgresNIO stops the process over when the server restarts).
        let clientConfiguration = try configuration.pool.configuration(settings: settings, size: configuration.maximumConnections)
        var background = Logger(label: "pglock.soak.pool")
        background.logLevel = .critical
        let client = PostgresClient(configuration: clientConfiguration, backgroundLogger: background)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            let context = SoakContext(client: client, settings: settings, logger: logger)
            try await setUp(context)
            let report = try await runPhases(context)
            if !configuration.keepTables {
                _ = try? await client.checkedQuery("DROP SCHEMA IF EXISTS \(identifier: schema) CASCADE", logger: logger)
                _ = try? await client.checkedQuery("DROP SCHEMA IF EXISTS \(identifier: queueSchema) CASCADE", logger: logger)
            }
            return report
        }
    }

    /// The faulty phase, then the drain, then the checks.
    private func runPhases(_ context: SoakContext) async throws -> SoakReport {
        let stopWork = SetOnceFlag()
        let stopFaults = SetOnceFlag()
        let queue = try await makeQueueWork(context)
        let state = SoakState()
        let started = ContinuousClock.now

        try await queue.withWorkers {
            await withTaskGroup(of: Void.self) { work in
                for worker in 0..<configuration.lockWorkers {
                    work.addTask { await runLockWorker(worker, context: context, state: state, stop: stopWork) }
                }
                for worker in 0..<configuration.counterWorkers {
                    work.addTask { await runCounterWorker(worker, context: context, state: state, stop: stopWork) }
                }
                for worker in 0..<configuration.ingestWorkers {
                    work.addTask { await runIngestWorker(worker, context: context, state: state, stop: stopWork) }
                }
                if configuration.jobsPerBatch > 0 && configuration.queueWorkers > 0 {
                    work.addTask { await queue.enqueue(until: stopWork, tallies: tallies, classify: { self.classify($0) }) }
                }
                if configuration.stormTasks > 0 {
                    work.addTask { await runStorm(context: context, stop: stopWork) }
                }
                await withTaskGroup(of: Void.self) { faults in
                    if let every = configuration.terminateEvery {
                        faults.addTask { await terminateBackends(every: every, context: context, stop: stopFaults) }
                    }
                    if let every = configuration.restartEvery, let restart = configuration.restart {
                        faults.addTask { await restartServer(every: every, restart: restart, stop: stopFaults) }
                    }
                    if let every = configuration.reportEvery, let report = configuration.progress {
                        faults.addTask {
                            while await SetOnceFlag.sleep(every, unless: stopFaults) { report(tallies.snapshot, ContinuousClock.now - started) }
                        }
                    }
                    faults.addTask {
                        _ = await SetOnceFlag.sleep(configuration.duration, unless: stopFaults)
                        stopFaults.set()
                    }
                }
                // Faults are over (no restart in progress); let the work finish what it is doing.
                stopWork.set()
            }
            try await queue.drain(timeout: configuration.drainTimeout, context: context)
        }
        let elapsed = ContinuousClock.now - started

        var findings = SoakFindings()
        findings.leakedLocks = try await leakedLocks(context)
        findings.add(try await checkLocks(context, state: state))
        findings.add(try await checkCounters(context, state: state))
        findings.add(try await checkIngestion(context, state: state))
        findings.add(try await queue.check(context))
        findings.hungCalls = tallies.snapshot.hungCalls
        return SoakReport(
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
            tallies: tallies.snapshot,
            findings: findings,
            unexpectedErrorSamples: tallies.unexpectedSamples,
            faultSamples: tallies.topFaults
        )
    }

    /// The schema of the run's job queue.
    package var queueSchema: SQLIdentifier {
        // Validated at init: the run's schema plus two characters stays within 63 bytes.
        try! SQLIdentifier("\(schema.name)_q")
    }

    package func table(_ name: String) -> QualifiedName {
        QualifiedName(schema: schema, name: try! SQLIdentifier(name))
    }

    /// Creates the run's schema and tables.
    private func setUp(_ context: SoakContext) async throws {
        let client = context.client, logger = context.logger
        try await client.checkedQuery("CREATE SCHEMA \(identifier: schema)", logger: logger)
        try await client.checkedQuery("CREATE TABLE \(identifier: table("lock_counters")) (key int PRIMARY KEY, value bigint NOT NULL)", logger: logger)
        try await client.checkedQuery("CREATE TABLE \(identifier: table("lock_ops")) (op bigint NOT NULL, key int NOT NULL)", logger: logger)
        let keys = Array(0..<Int32(configuration.lockKeys))
        if !keys.isEmpty {
            try await client.checkedQuery("INSERT INTO \(identifier: table("lock_counters")) SELECT unnest(\(keys)::int[]), 0", logger: logger)
        }
        // No unique constraint on the recorded numbers: a duplicate must be seen, not refused.
        try await client.checkedQuery("CREATE TABLE \(identifier: table("issued")) (strategy text NOT NULL, scope text NOT NULL, number bigint NOT NULL, op bigint NOT NULL)", logger: logger)
        for counter in try counters() {
            try await counter.migrate(on: client, logger: logger)
        }
        try await createIngestionTables(context)
    }

    /// One counter per strategy.
    package func counters() throws -> [GaplessCounter] {
        try configuration.counterStrategies.map { strategy in
            try GaplessCounter(table: "counter_" + strategy.rawValue.replacingOccurrences(of: "-", with: "_"), schema: schema.name, strategy: strategy)
        }
    }

    /// Whether an error is what a fault causes (the operation is retried), as opposed to a bug.
    package func classify(_ error: any Error) -> SoakErrorKind {
        if error is CancellationError { return .cancelled }
        guard let error = PostgresLocksError.wrap(error) as? PostgresLocksError else { return .unexpected }
        switch error.code {
        case .connectionLost, .lockLost, .connectionRefused, .socketNotFound, .connectTimeout, .commitOutcomeUnknown: return .fault
        case .lockTimeout: return .timeout
        case .queryCanceled: return .cancelled
        default:
            // A restarting server refuses connections with these before it is up.
            if let state = error.sqlState, state == "57P03" || state.hasPrefix("08") { return .fault }
            return .unexpected
        }
    }
}

/// How one failed operation is counted.
package enum SoakErrorKind: Sendable {
    /// Caused by an injected fault: retried.
    case fault
    /// A lock wait reached its deadline.
    case timeout
    /// The operation was cancelled.
    case cancelled
    /// Not explained by the faults.
    case unexpected
}

/// What every part of a run shares.
package struct SoakContext: Sendable {
    package let client: PostgresClient
    package let settings: ConnectionSettings
    package let logger: Logger
}

/// What the workers remember for the checks: operations confirmed committed, when each
/// critical section ran, and which ingested keys clients saw accepted.
package final class SoakState: Sendable {
    package struct Section: Sendable {
        package var key: Int32
        package var start: Duration
        package var end: Duration
    }

    private let nextOp = Mutex<Int64>(0)
    package let origin = ContinuousClock.now
    package let confirmedLockOps = Mutex<Set<Int64>>([])
    package let confirmedCounterOps = Mutex<Set<Int64>>([])
    package let sections = Mutex<[Int64: Section]>([:])
    package let inside = Mutex<[Int32: Int]>([:])
    /// The number of the next new ingestion key (keys are `k<number>`).
    package let nextIngestKey = Mutex<Int>(0)
    /// Keys of ingestion calls that returned (or of their committed transactions): stored.
    package let acceptedIngestKeys = Mutex<Set<String>>([])
    /// How many calls reported each key as new (exactly once means never more than 1).
    package let ingestNewKeyReports = Mutex<[String: Int]>([:])

    /// A new operation id, unique within the run.
    package func newOp() -> Int64 { nextOp.withLock { $0 += 1; return $0 } }

    /// Now, as an offset from the run's start.
    package var now: Duration { ContinuousClock.now - origin }
}
