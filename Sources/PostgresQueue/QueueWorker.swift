import Foundation
import Logging
import Metrics
import PostgresLocks
import PostgresNIO
import ServiceLifecycle
import Tracing

/// A swift-service-lifecycle `Service` that works one queue: it claims jobs in batches, runs
/// each kind's handler with a concurrency limit, keeps their leases alive, completes them in
/// batches, retries failures with backoff, reclaims expired leases and prunes old jobs.
///
/// ```swift
/// var handlers = JobHandlers()
/// handlers.register("send-email") { (email: Email, context) in try await mailer.send(email) }
/// let worker = try QueueWorker(queue: queue, client: client, handlers: handlers,
///                              configuration: .init(queue: "default", listen: settings),
///                              logger: logger)
/// let group = ServiceGroup(services: [client, worker], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// Graceful shutdown stops claiming, lets running jobs finish within
/// ``Configuration/shutdownGracePeriod``, then cancels the rest and gives their leases back
/// (without counting the attempt). Jobs run at least once: a job whose worker dies is run
/// again after its lease expires, and a worker whose lease was reclaimed can no longer
/// record an outcome (every transition is fenced by the lease token).
public final class QueueWorker: Service {
    /// The queue's tables.
    public let queue: JobQueue
    /// The client used for claims, outcomes and handlers' work.
    public let client: PostgresClient
    /// The handlers per kind.
    public let handlers: JobHandlers
    /// The settings.
    public let configuration: Configuration
    let logger: Logger
    /// The `LISTEN` connection's configuration, made from ``Configuration/listen`` in `init`.
    let listenConfiguration: PostgresConnection.Configuration?
    private let started = SetOnceFlag()
    /// Each kind's handler inside the middleware chain, built once.
    private let chains: [String: JobHandlers.Handler]
    /// The queue's stored settings as this worker last read them.
    private let control: ControlState

    private let claimedCounter: Counter
    private let completedCounter: Counter
    private let failedCounter: Counter
    private let leaseLostCounter: Counter
    private let pickupTimer: Metrics.Timer
    private let depthGauge: Gauge
    private let stopping = SetOnceFlag()

    /// Whether graceful shutdown has begun: the worker claims nothing more.
    public var isShuttingDown: Bool { stopping.isSet }

    /// A worker of `queue` with `handlers`; nothing is sent to the server until ``run()``.
    ///
    /// - Throws: `PostgresLocksError.Code.invalidArgument` for a setting out of
    ///   range, no handlers, or listen settings that cannot make a connection configuration.
    public init(queue: JobQueue, client: PostgresClient, handlers: JobHandlers, configuration: Configuration = Configuration(), logger: Logger) throws {
        try configuration.validate()
        try PostgresLocksError.require(!handlers.kinds.isEmpty, "the worker has no handlers: register at least one job kind")
        if let (_, error) = handlers.invalidSettings.min(by: { $0.key < $1.key }) { throw error }
        var chains: [String: JobHandlers.Handler] = [:]
        for kind in handlers.kinds { chains[kind] = handlers.chain(for: kind) }
        self.chains = chains
        self.control = ControlState(queue: configuration.queue)
        do {
            self.listenConfiguration = try configuration.listen.map { settings in
                var settings = settings
                if settings.applicationName == nil {
                    settings.applicationName = ConnectionSettings.applicationName("pglocks-queue-listen", instance: configuration.owner)
                }
                return try settings.makeConnectionConfiguration()
            }
        } catch {
            throw PostgresLocksError(code: .invalidArgument, message: "the listen settings cannot be used: \(error)")
        }
        self.queue = queue
        self.client = client
        self.handlers = handlers
        self.configuration = configuration
        self.logger = logger.with("queue", configuration.queue)
        let dimensions = [("queue", configuration.queue)]
        claimedCounter = Counter(label: "pglocks_queue_jobs_claimed_total", dimensions: dimensions)
        completedCounter = Counter(label: "pglocks_queue_jobs_completed_total", dimensions: dimensions)
        failedCounter = Counter(label: "pglocks_queue_jobs_failed_total", dimensions: dimensions)
        leaseLostCounter = Counter(label: "pglocks_queue_leases_lost_total", dimensions: dimensions)
        pickupTimer = Metrics.Timer(label: "pglocks_queue_pickup_latency", dimensions: dimensions)
        depthGauge = Gauge(label: "pglocks_queue_depth", dimensions: dimensions)
    }

    /// Works the queue until graceful shutdown or cancellation.
    ///
    /// - Throws: `PostgresLocksError.Code.invalidArgument` if `run()` is called a
    ///   second time.
    public func run() async throws {
        try PostgresLocksError.require(started.setIfClear(), "run() was already called on this QueueWorker; create a new one to run again")
        let stopping = self.stopping
        let wake = WakeSignal()
        try await withGracefulShutdownHandler {
            try await self.work(stopping: stopping, wake: wake)
        } onGracefulShutdown: {
            stopping.set()
            wake.signal()
        }
    }

    private func work(stopping: SetOnceFlag, wake: WakeSignal) async throws {
        let inFlight = InFlightJobs()
        await refreshControl(wake: wake)
        let kinds = handlers.kinds  // sorted once: the handlers never change
        let completions = LeaseBuffer()
        let givenBack = LeaseBuffer()
        let logger = self.logger
        let claimPlace = ClaimPlace()
        await withTaskGroup(of: Void.self) { background in
            background.addTask { await self.listen(wake: wake, inFlight: inFlight) }
            background.addTask {
                await self.tick(every: self.configuration.pollInterval) {
                    await self.refreshControl(wake: wake)
                    wake.signal()
                }
            }
            background.addTask { await self.maintain(claimPlace: claimPlace) }
            background.addTask { await self.tick(every: self.configuration.heartbeat) { await self.heartbeat(inFlight) } }
            background.addTask { await self.writeCompletions(completions) }

            // A discarding group: a finished job's task is freed at once (a plain task group
            // keeps every child's result until it is read).
            let jobDone = WakeSignal()
            // Where the next claim starts: after the last job claimed, with a full scan now and
            // then (see ClaimCursor: claims stay fast while an old snapshot is held).
            var cursor = ClaimCursor()
            await withDiscardingTaskGroup { jobs in
                // Claim while there is room and work; otherwise wait for a wake-up (a
                // notification, the poll tick, a finished job).
                for await _ in wake.stream {
                    if stopping.isSet || Task.isCancelled { break }
                    while !stopping.isSet {
                        // A paused queue: claim nothing (the claim statements would refuse too)
                        // until a resume message or a poll tick finds it running again.
                        let control = self.control.current
                        if control.paused { break }
                        let policy = ClaimPolicy(concurrency: control.concurrency ?? configuration.concurrency, batchSize: configuration.claimBatchSize)
                        // Claim in batches: wait until a useful number of slots is free
                        // rather than claiming one job per finished job.
                        guard let asked = policy.jobsToClaim(running: inFlight.count) else { break }
                        let claimed: [ClaimedJob]
                        let scan = cursor.nextClaim(now: .now)
                        let claimStarted = ContinuousClock.now
                        do {
                            claimed = try await queue.claim(
                                from: configuration.queue, kinds: kinds, limit: asked, lease: configuration.lease,
                                owner: configuration.owner, after: scan.bound, on: client, logger: logger
                            )
                        } catch {
                            if Task.isCancelled { break }
                            logger.warning("claim failed; trying again", metadata: ["error": .error(error)])
                            try? await Task.sleep(for: min(configuration.pollInterval, .milliseconds(250)))
                            wake.signal()
                            break
                        }
                        let now = Date(), clock = ContinuousClock.now
                        // A short bounded claim may have left jobs waiting before the cursor.
                        let looksBehind = cursor.record(scan, asked: asked, claimed: claimed.map(\.claimPosition), started: claimStarted, finished: clock)
                        claimPlace.update(cursor.position)
                        if !claimed.isEmpty { claimedCounter.increment(by: Int64(claimed.count)) }
                        for job in claimed {
                            pickupTimer.recordNanoseconds(Int64(max(0, now.timeIntervalSince(job.runAt)) * 1e9))
                            inFlight.add(job.lease, kind: job.kind, extendUntil: handlers.settings(of: job.kind).maxRuntime.map { clock + $0 })
                            jobs.addTask {
                                await self.runJob(job, inFlight: inFlight, completions: completions, givenBack: givenBack)
                                wake.signal()
                                jobDone.signal()
                            }
                        }
                        if !policy.claimsAgain(asked: asked, claimed: claimed.count), !looksBehind { break }
                    }
                }
                // Shutting down: let running jobs finish within the grace period, then cancel
                // them (their leases are given back below).
                guard inFlight.count > 0 else { return }
                logger.info("stopping: waiting for running jobs", metadata: ["running": "\(inFlight.count)"])
                let graceOver = SetOnceFlag()
                let grace = configuration.shutdownGracePeriod
                jobs.addTask {
                    try? await Task.sleep(for: grace)
                    graceOver.set()
                    jobDone.signal()
                }
                for await _ in jobDone.stream {
                    if inFlight.count == 0 { break }
                    if graceOver.isSet {
                        logger.warning("grace period over: cancelling running jobs and giving their leases back", metadata: ["running": "\(inFlight.count)"])
                        break
                    }
                }
                jobs.cancelAll()
            }
            wake.finish()
            background.cancelAll()
        }
        // Outside the cancelled tasks: record what the jobs left behind.
        await flushCompletions(completions, attempts: 5)
        let leases = givenBack.takeAll().leases
        if !leases.isEmpty {
            do {
                try await queue.giveBack(leases, on: client, logger: logger)
            } catch {
                logger.warning("could not give leases back; the jobs will be reclaimed when their leases expire", metadata: ["error": .error(error)])
            }
        }
    }

    private enum JobResult: Sendable {
        case decided(JobOutcome)
        case failed(any Error)
        case leaseLost
        case cancelled

        /// What the job's span records as its outcome.
        var spanOutcome: String {
            switch self {
            case .decided(let outcome):
                switch outcome.decision {
                case .complete: "completed"
                case .snooze: "snoozed"
                case .retry: "retry"
                case .discard: "discarded"
                case .cancel: "cancelled"
                }
            case .failed: "failed"
            case .leaseLost: "lease lost"
            case .cancelled: "stopped"
            }
        }
    }

    /// Runs one job's handler (stopped if its lease is lost or it is cancelled, failed if it
    /// outruns its kind's run timeout) and records the outcome.
    private func runJob(_ job: ClaimedJob, inFlight: InFlightJobs, completions: LeaseBuffer, givenBack: LeaseBuffer) async {
        let flag = SetOnceFlag()
        let context = JobContext(job: job, queue: queue, client: client, baseLogger: logger, completedInTransaction: flag)
        let chain = chains[job.kind]
        let settings = handlers.settings(of: job.kind)
        for observer in queue.observers { await observer.jobStarted(job) }
        let startedAt = ContinuousClock.now
        // The run's span continues the trace of the code that enqueued the job (its context
        // travels in the job's metadata), else the worker's own context.
        let span = startSpan(
            "pglocks.job", context: JobTraceContext.extract(from: job.metadata) ?? ServiceContext.current ?? .topLevel,
            ofKind: .consumer, at: DefaultTracerClock.now
        )
        span.attributes["pglocks.job.id"] = job.id
        span.attributes["pglocks.job.kind"] = job.kind
        span.attributes["pglocks.job.queue"] = job.queue
        span.attributes["pglocks.job.attempt"] = Int64(job.attempt)
        defer { span.end() }
        // The handler runs in its own task so that the heartbeat, a cancel message or the run
        // timeout can cancel this one job; cancelling this task (shutdown) cancels it too. It
        // runs with the job's span as its context (a task inherits it where it is created).
        let work = ServiceContext.$current.withValue(span.context) {
            Task<JobOutcome, any Error> {
                guard let chain else {
                    throw PostgresLocksError(code: .invalidArgument, message: "no handler for kind \(job.kind)")
                }
                return try await chain(job, context)
            }
        }
        inFlight.setCancel(job.id) { work.cancel() }
        let timedOut = SetOnceFlag()
        let outcome = await withTaskCancellationHandler {
            guard let timeout = settings.runTimeout else { return await work.result }
            return await withTaskGroup(of: Void.self, returning: Result<JobOutcome, any Error>.self) { group in
                group.addTask {
                    guard (try? await Task.sleep(for: timeout)) != nil else { return }
                    timedOut.set()
                    work.cancel()
                }
                let result = await work.result
                group.cancelAll()
                return result
            }
        } onCancel: {
            work.cancel()
        }
        // The job keeps its slot until its outcome is recorded and the observers are told: a
        // retry due at once is not claimed by this worker before its failure is reported.
        let leaseLost = inFlight.isLost(job.id)
        defer { inFlight.remove(job.id) }
        let result: JobResult
        switch outcome {
        case .success where leaseLost: result = .leaseLost
        case .success(let decided): result = .decided(decided)
        case .failure where leaseLost: result = .leaseLost
        case .failure where timedOut.isSet:
            result = .failed(PostgresQueueError(code: .runTimeout, message: "job \(job.id) (\(job.kind)) ran longer than its run timeout of \(settings.runTimeout ?? .zero) and was cancelled"))
        case .failure where Task.isCancelled: result = .cancelled
        case .failure(let error): result = .failed(error)
        }
        let jobLogger = context.logger
        span.attributes["pglocks.job.outcome"] = result.spanOutcome
        if case .failed(let error) = result { span.recordError(error) }
        switch result {
        case .decided(let outcome):
            await record(outcome, of: job, settings: settings, runtime: ContinuousClock.now - startedAt, completedInTransaction: flag.isSet, completions: completions, logger: jobLogger)
        case .failed(let error):
            failedCounter.increment()
            let discard = (error as? PostgresQueueError)?.code == .payloadCoding || chain == nil
            let delay = (settings.backoff ?? configuration.backoff).delay(afterAttempt: Int(job.attempt))
            await recordFailure(of: job, error: "\(error)", retryAfter: delay, discard: discard, settings: settings, logger: jobLogger)
        case .leaseLost:
            leaseLostCounter.increment()
            jobLogger.warning("job lease lost (reclaimed or cancelled): its handler was cancelled")
        case .cancelled:
            // This task is cancelled, so it cannot talk to the pool: the worker gives the lease
            // back once the jobs have stopped.
            givenBack.add(job.lease)
        }
    }

    /// Records what a handler decided.
    private func record(
        _ outcome: JobOutcome,
        of job: ClaimedJob,
        settings: JobKindSettings,
        runtime: Duration,
        completedInTransaction: Bool,
        completions: LeaseBuffer,
        logger: Logger
    ) async {
        do {
            switch outcome.decision {
            case .complete(let output):
                if completedInTransaction { completedCounter.increment() } else { completions.add(job.lease, output: output ?? "") }
                for observer in queue.observers { await observer.jobCompleted(job, runtime: runtime) }
            case .snooze(let delay):
                if let runAt = try await queue.snooze(job.lease, for: delay, on: client, logger: logger) {
                    logger.debug("job snoozed", metadata: ["until": "\(runAt)"])
                } else {
                    leaseLostCounter.increment()
                    logger.warning("could not snooze the job: its lease is no longer held")
                }
            case .retry(let delay, let reason):
                failedCounter.increment()
                await recordFailure(of: job, error: reason, retryAfter: delay, discard: false, settings: settings, logger: logger)
            case .discard(let reason):
                failedCounter.increment()
                await recordFailure(of: job, error: reason, retryAfter: .zero, discard: true, settings: settings, logger: logger)
            case .cancel(let reason):
                if try await queue.cancel(job.lease, reason: reason, on: client, logger: logger) {
                    logger.info("job cancelled by its handler", metadata: ["reason": "\(reason)"])
                } else {
                    leaseLostCounter.increment()
                }
            }
        } catch {
            // The lease will expire and the reaper will make the job available again.
            logger.error("could not record a job's outcome", metadata: ["error": .error(error), "outcome": "\(outcome.decision)"])
        }
    }

    private func recordFailure(of job: ClaimedJob, error: String, retryAfter: Duration, discard: Bool, settings: JobKindSettings, logger: Logger) async {
        do {
            let outcome = try await queue.fail(
                job.lease, error: error, retryAfter: retryAfter, discard: discard, maxAttempts: settings.maxAttempts, on: client, logger: logger
            )
            logger.warning("job failed", metadata: ["error": "\(error)", "outcome": "\(outcome)"])
            switch outcome {
            case .retryScheduled(let at):
                for observer in queue.observers { await observer.jobFailed(job, error: error, retryAt: at) }
            case .dead:
                for observer in queue.observers {
                    await observer.jobFailed(job, error: error, retryAt: nil)
                    await observer.jobDead(job, reason: error)
                }
            case .leaseLost:
                leaseLostCounter.increment()
            }
        } catch {
            // The lease will expire and the reaper will retry the job.
            logger.error("could not record a job failure", metadata: ["error": .error(error)])
        }
    }

    /// Acts on a control message: cancels a job running here, or re-reads the queue's settings.
    private func obey(_ payload: String, wake: WakeSignal, inFlight: InFlightJobs) async {
        guard let message = QueueControlMessage(payload: payload) else { return }
        switch message {
        case .cancelled(let id):
            guard inFlight.contains(id) else { return }
            logger.info("job cancelled: cancelling its task", metadata: ["job": "\(id)"])
            inFlight.markLost([id])
        case .paused(let queue), .resumed(let queue), .settingsChanged(let queue):
            guard queue == configuration.queue else { return }
            await refreshControl(wake: wake)
            wake.signal()
        }
    }

    /// Reads the queue's stored settings; wakes the claim loop when a pause ended.
    private func refreshControl(wake: WakeSignal) async {
        do {
            let current = try await queue.control(of: configuration.queue, on: client, logger: logger)
            let previous = control.current
            if control.update(current) { wake.signal() }
            if previous.paused != current.paused || previous.concurrency != current.concurrency {
                logger.info("queue settings", metadata: ["paused": "\(current.paused)", "concurrency": "\(current.concurrency.map(String.init) ?? "configured")"])
            }
        } catch {
            if !Task.isCancelled { logger.warning("could not read the queue's settings", metadata: ["error": .error(error)]) }
        }
    }

    /// Writes completions in batches: whatever accumulated while the previous batch was written.
    private func writeCompletions(_ completions: LeaseBuffer) async {
        for await _ in completions.wake.stream {
            if Task.isCancelled { return }
            await flushCompletions(completions, attempts: 1)
            if !completions.isEmpty {
                // The write failed: try again shortly.
                do { try await Task.sleep(for: .milliseconds(200)) } catch { return }
                completions.wake.signal()
            }
        }
    }

    /// Writes the buffered completions; on failure puts them back (and tries up to `attempts` times).
    private func flushCompletions(_ completions: LeaseBuffer, attempts: Int) async {
        for attempt in 1...attempts {
            let (batch, outputs) = completions.takeAll()
            guard !batch.isEmpty else { return }
            do {
                let refused = try await queue.complete(batch, outputs: outputs, on: client, logger: logger)
                completedCounter.increment(by: Int64(batch.count - refused.count))
                if !refused.isEmpty {
                    leaseLostCounter.increment(by: Int64(refused.count))
                    logger.warning("completions refused: leases reclaimed or jobs cancelled meanwhile", metadata: ["jobs": "\(refused.map(\.id))"])
                }
                return
            } catch {
                completions.putBack(batch, outputs: outputs)
                logger.warning("could not write completions", metadata: ["error": .error(error), "jobs": "\(batch.count)", "attempt": "\(attempt)"])
                if attempt < attempts { try? await Task.sleep(for: .milliseconds(200)) }
            }
        }
    }

    private func heartbeat(_ inFlight: InFlightJobs) async {
        let leases = inFlight.leasesToExtend(at: .now)
        guard !leases.isEmpty else { return }
        do {
            let lost = try await queue.extendLeases(leases, by: configuration.lease, on: client, logger: logger)
            if !lost.isEmpty { inFlight.markLost(lost.map(\.id)) }
        } catch {
            if !Task.isCancelled { logger.warning("lease heartbeat failed", metadata: ["error": .error(error)]) }
        }
    }

    /// Every `reapInterval`: reclaims expired leases (from where the last pass ended, see
    /// ``ReapCursor``), prunes rate-limit start records, records the queue's depth (counted from
    /// the claim loop's place) and applies the retention.
    private func maintain(claimPlace: ClaimPlace) async {
        var reaper = ReapCursor()
        let reapLimit = 1000
        while !Task.isCancelled {
            do { try await Task.sleep(for: configuration.reapInterval) } catch { return }
            do {
                let pass = reaper.nextPass(now: .now)
                let started = ContinuousClock.now
                let (reaped, serverNow) = try await queue.reap(limit: reapLimit, since: pass.floor, on: client, logger: logger)
                reaper.record(pass, reaped: reaped.reclaimed + reaped.dead, limit: reapLimit, serverNow: serverNow, started: started, finished: .now)
                try await queue.pruneStarts(on: client, logger: logger)
                depthGauge.record(try await queue.readyCount(queue: configuration.queue, after: claimPlace.current, on: client, logger: logger))
                if let retention = configuration.retention {
                    try await queue.prune(olderThan: retention, on: client, logger: logger)
                }
            } catch {
                if !Task.isCancelled { logger.warning("queue maintenance failed", metadata: ["error": .error(error)]) }
            }
        }
    }

    /// Runs `action` every `interval` until cancelled.
    private func tick(every interval: Duration, _ action: @Sendable () async -> Void) async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            await action()
        }
    }

    /// Holds a `LISTEN` on a dedicated connection and signals on every notification for this
    /// worker's queue (and once more `notifyDebounce` later, for notifications an enqueuer
    /// folded into an earlier one). Reconnects with backoff; before each connect it probes for a
    /// transaction pooler, and from the first one it finds the worker only polls.
    private func listen(wake: WakeSignal, inFlight: InFlightJobs) async {
        guard let listenConfiguration else { return }
        let queueName = configuration.queue
        let channel = queue.channel.name
        let controlChannel = queue.controlChannel.name
        let trailing = WakeSignal()
        let debounce = queue.notifyDebounce
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in trailing.stream {
                    do { try await Task.sleep(for: debounce) } catch { return }
                    wake.signal()
                }
            }
            var reconnects = ReconnectSchedule(backoff: Backoff(initial: .milliseconds(100), maximum: .seconds(5)))
            while !Task.isCancelled {
                var healthy = false
                // Before every (re)connect: the URL may lead somewhere else after a failover, and
                // notifications would go to whichever server process a transaction pooler picked.
                let pooling = await PostgresConnection.probePooling(configuration: listenConfiguration, logger: logger)
                logger.debug("LISTEN connection: pooling probe", metadata: ["found": "\(pooling)"])
                if pooling == .transactionPooling {
                    logger.warning("cannot LISTEN through a transaction-pooling proxy; the worker polls for jobs instead", metadata: [
                        "queue": "\(queueName)", "pollInterval": "\(configuration.pollInterval)",
                    ])
                    break
                }
                if pooling == .sessionPerConnection {
                    do {
                        let connection = try await PostgresConnection.connect(configuration: listenConfiguration, id: Int.random(in: 1...Int(Int32.max)), logger: logger)
                        do {
                            try await connection.listen(on: controlChannel) { controls in
                                try await connection.listen(on: channel) { notifications in
                                    healthy = true
                                    // Jobs and control messages may have come while not listening.
                                    await self.refreshControl(wake: wake)
                                    wake.signal()
                                    try await withThrowingTaskGroup(of: Void.self) { group in
                                        group.addTask {
                                            for try await notification in controls {
                                                await self.obey(notification.payload, wake: wake, inFlight: inFlight)
                                            }
                                        }
                                        for try await notification in notifications where notification.payload == queueName {
                                            wake.signal()
                                            if debounce > .zero { trailing.signal() }
                                        }
                                        group.cancelAll()
                                    }
                                }
                            }
                        } catch {
                            if !Task.isCancelled { logger.warning("LISTEN connection failed; reconnecting", metadata: ["error": .error(error)]) }
                        }
                        try? await connection.close()
                    } catch {
                        if !Task.isCancelled { logger.warning("cannot open the LISTEN connection; polling meanwhile", metadata: ["error": .error(error)]) }
                    }
                } else if !Task.isCancelled {
                    // The probe could not run (nothing answers at the address yet): connecting
                    // now could reach whatever answers next unchecked. Poll, and probe again.
                    logger.debug("the LISTEN address does not answer; polling meanwhile")
                }
                do { try await Task.sleep(for: reconnects.pauseAfterSession(healthy: healthy)) } catch { break }
            }
            trailing.finish()
            group.cancelAll()
        }
    }
}

