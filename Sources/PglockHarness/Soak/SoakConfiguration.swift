import PostgresLocks

/// What a soak run does: how long, how many workers of each kind, and which faults.
/// A count of 0 turns that kind of work off.
package struct SoakConfiguration: Sendable {
    /// How long the faulty phase lasts (the queue drains afterwards).
    package var duration: Duration
    /// Tasks running `withAdvisoryLock` critical sections.
    package var lockWorkers = 6
    /// Keys they contend on (each guards one counter row).
    package var lockKeys = 3
    /// Tasks allocating gapless numbers.
    package var counterWorkers = 6
    /// Scopes per counter.
    package var counterScopes = 2
    /// The counters' strategies (one counter table each).
    package var counterStrategies: [GaplessCounter.Strategy] = GaplessCounter.Strategy.allCases
    /// Tasks ingesting batches of business keys through `ExactlyOnceIngestion` (half of them on
    /// a dedicated connection, half on the pool).
    package var ingestWorkers = 6
    /// Keys (events) per ingestion batch, duplicates included.
    package var ingestBatchSize = 24
    /// The share of a batch's keys that repeat recent keys, 0…1.
    package var ingestDuplicateShare = 0.3
    /// Distinct keys per ingestion transaction (a batch is split into several).
    package var ingestKeysPerTransaction = 8
    /// A random pause of up to this long after each lock section, number and ingestion batch, so the run
    /// keeps its concurrency without using every CPU cycle (zero: none).
    package var pause: Duration = .zero
    /// `QueueWorker` services.
    package var queueWorkers = 2
    /// Jobs each queue worker runs at once.
    package var queueConcurrency = 4
    /// Jobs per enqueue (0: no queue work).
    package var jobsPerBatch = 20
    /// Time between enqueues.
    package var enqueueInterval: Duration = .milliseconds(150)
    /// Lock waits per storm wave (0: no storm).
    package var stormTasks = 0
    /// Contended keys the storm waits on.
    package var stormKeys = 4
    /// The shortest and longest `.timeout` of a storm wait.
    package var stormTimeouts: (Duration, Duration) = (.milliseconds(5), .milliseconds(150))
    /// The pause between storm waves.
    package var stormWavePause: Duration = .zero
    /// The latest moment after its start that a storm wait is cancelled.
    package var stormLatestCancel: Duration = .milliseconds(250)
    /// A backend of the run's sessions is terminated this often on average (nil: never).
    package var terminateEvery: Duration? = .milliseconds(200)
    /// The server is restarted this often (needs ``restart``).
    package var restartEvery: Duration?
    /// Restarts the server (stop immediately, start again on the same data).
    package var restart: (@Sendable () async throws -> Void)?
    /// Progress is reported this often through ``progress``.
    package var reportEvery: Duration?
    /// Receives the tallies and the time elapsed, every ``reportEvery``.
    package var progress: (@Sendable (SoakTallies.Snapshot, Duration) -> Void)?
    /// How long the queue may take to finish its jobs once the faults stop.
    package var drainTimeout: Duration = .seconds(60)
    /// How far past its deadline (or its cancellation) a call may return before it counts as hung.
    package var hangBound: Duration = .seconds(5)
    /// The run's pool size.
    package var maximumConnections = 40
    /// The pool of the soak's client.
    package var pool = PoolChoice.recommended
    /// Keep the run's tables afterwards.
    package var keepTables = false

    /// A configuration running for `duration` with the default mix.
    package init(duration: Duration) {
        self.duration = duration
    }

    package func validate() throws {
        let counts = [lockWorkers, lockKeys, counterWorkers, counterScopes, ingestWorkers, queueWorkers, queueConcurrency, jobsPerBatch, stormTasks, stormKeys]
        guard counts.allSatisfy({ $0 >= 0 }), duration > .zero, maximumConnections >= 2 else {
            throw PostgresLocksError(code: .invalidArgument, message: "soak counts must not be negative, the duration must be positive and the pool at least 2")
        }
        guard lockWorkers == 0 || lockKeys > 0, counterWorkers == 0 || (counterScopes > 0 && !counterStrategies.isEmpty), stormTasks == 0 || stormKeys > 0 else {
            throw PostgresLocksError(code: .invalidArgument, message: "workers need at least one key, scope and strategy to work on")
        }
        guard ingestWorkers == 0 || (ingestBatchSize > 0 && (0...1).contains(ingestDuplicateShare)
            && (1...ExactlyOnceIngestion<String>.maximumAllowedKeysPerTransaction).contains(ingestKeysPerTransaction)) else {
            throw PostgresLocksError(code: .invalidArgument, message: "ingestion batches need at least one key, a duplicate share from 0 to 1 and 1…100,000 keys per transaction")
        }
        guard stormTimeouts.0 > .zero, stormTimeouts.1 >= stormTimeouts.0 else {
            throw PostgresLocksError(code: .invalidArgument, message: "storm timeouts must be positive and ordered")
        }
        guard pause >= .zero, stormWavePause >= .zero else {
            throw PostgresLocksError(code: .invalidArgument, message: "pauses must not be negative")
        }
        if let terminateEvery, terminateEvery <= .zero {
            throw PostgresLocksError(code: .invalidArgument, message: "terminateEvery must be positive")
        }
        if let restartEvery, restartEvery <= .zero {
            throw PostgresLocksError(code: .invalidArgument, message: "restartEvery must be positive")
        }
    }
}
