import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Many session advisory locks held at once on a few server sessions: thousands of locks (one
/// per shard, tenant or long job) over a handful of connections, each released when its holder
/// ends, each holder told when the session carrying it dies.
///
/// `PostgresClient.withSessionAdvisoryLock` keeps a pooled connection for as long as its body
/// runs, so a process can hold only as many session locks as it has connections. A pool keeps
/// its own few sessions and puts many locks on each:
///
/// ```swift
/// let locks = try SessionLockPool(configuration: .init(connection: settings), logger: logger)
/// // Run it with your other services (first in the group, so it stops last).
/// let group = ServiceGroup(services: [locks, server], gracefulShutdownSignals: [.sigterm], logger: logger)
///
/// // Then, anywhere:
/// try await locks.withLock(.hashed("shard:17")) {
///     try await serveShard(17)   // cancelled with `lockLost` if the session carrying the lock dies
/// }
/// ```
///
/// How locks are taken:
/// - **Without waiting** first: `pg_try_advisory_lock` on the carrying session with the fewest
///   locks (``Configuration/connections`` of them). A session takes again a lock it already
///   holds, so a key is never taken on a session where it is already in use (two shared holds
///   excepted): the server then excludes the holders of one key from each other, in this
///   process as between processes.
/// - **Waiting** (`wait: .forever` or `.timeout`) when that is refused: on the server, in its
///   FIFO queue and seen by its deadlock detection, on a *waiting session* of its own, which
///   then carries that one lock until it is released. At most
///   ``Configuration/waitingConnections`` such sessions exist; past them, takers queue in this
///   process for the next free one. So the pool uses at most `connections + waitingConnections`
///   server connections.
///
/// Each session has one heartbeat, however many locks it carries: it asks the server whether
/// the session is still the one the locks were taken on (its `pg_backend_pid()`), within
/// ``Configuration/responseTimeout``. When a session's connection closes or its heartbeat
/// fails, every lock on it is lost at once: each ``withLock(_:mode:wait:_:)`` body on it is
/// cancelled and throws ``PostgresLocksError/Code/lockLost``, each ``SessionLock`` on it reports
/// ``SessionLock/isLost``; holds on other sessions are not touched. Carrying sessions reconnect
/// on their own.
///
/// On graceful shutdown (or cancellation of ``run()``), the pool closes its sessions: locks still
/// held are lost (the server releases them with the sessions). Put the pool before the services
/// that use it in a `ServiceGroup`, so that it stops after them.
///
/// Session locks need a session: behind a transaction-pooling proxy use a direct connection
/// (see <doc:RunningBehindPoolers>); a session that changes under the pool shows as a failed
/// heartbeat.
public final class SessionLockPool: Service, Sendable {
    /// How the pool connects, and how many sessions it may use.
    public let configuration: Configuration
    let connectionConfiguration: PostgresConnection.Configuration
    let logger: Logger

    private let shell: Mutex<Shell>
    private let started = SetOnceFlag()
    /// Fired when the first carrying session comes up, and when the pool stops.
    private let ready = OneShotSignal()
    private let commands: AsyncStream<Command>
    private let commandSink: AsyncStream<Command>.Continuation

    /// Work that `run()` does for the pool's callers, in its own task group.
    enum Command: Sendable {
        /// Open waiting session `id` and keep it until it ends.
        case openWaitingSession(Int)
        /// Release a hold whose ``SessionLock`` was dropped.
        case release(SessionLockPoolState.HoldID)
    }

    /// The pool's state with its connections and signals.
    struct Shell: Sendable {
        var core: SessionLockPoolState
        var connections: [Int: PostgresConnection] = [:]
        /// Fired when a waiting session comes up or fails to.
        var sessionUp: [Int: OneShotSignal] = [:]
        /// Granted holds whose owners were handed their session's loss signal.
        var confirmed: Set<SessionLockPoolState.HoldID> = []
        /// Fired when a session ends: one per session (made when its first hold is granted),
        /// shared by every hold it carries.
        var sessionLoss: [Int: OneShotSignal] = [:]
        /// Granted holds lost with their session and not yet released by their owner.
        var lost: [SessionLockPoolState.HoldID: String] = [:]
        /// Takers waiting for a waiting session, first come first served, with their wake-ups.
        var waitingTakers: [UInt64] = []
        var takerSignals: [UInt64: OneShotSignal] = [:]
        /// Waiting sessions handed to queued takers (reserved for them under the lock).
        var handoffs: [UInt64: (session: Int, opens: Bool)] = [:]
        var nextTaker: UInt64 = 0
        /// Why the pool no longer takes locks, once it has stopped.
        var stopped: PostgresLocksError?
        /// When a statement of each session was last answered: an answering session needs no
        /// heartbeat (one would queue behind its statements and could be taken for unanswered).
        var lastAnswer: [Int: ContinuousClock.Instant] = [:]

        /// Hands reservable waiting sessions to queued takers in order; returns the signals to fire.
        mutating func offerWaitingSessions() -> [OneShotSignal] {
            var wake: [OneShotSignal] = []
            while let taker = waitingTakers.first, let reserved = core.reserveWaitingSession() {
                waitingTakers.removeFirst()
                if reserved.opens { sessionUp[reserved.session] = OneShotSignal() }
                handoffs[taker] = reserved
                if let signal = takerSignals.removeValue(forKey: taker) { wake.append(signal) }
            }
            return wake
        }
    }

    /// Creates a pool; nothing is sent to the server until ``run()``.
    ///
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` for counts or durations out of range,
    ///   or connection settings that cannot be turned into a configuration.
    public init(configuration: Configuration, logger: Logger) throws(PostgresLocksError) {
        try configuration.validate()
        let settings = configuration.connection.named("pglocks-locks", instance: ServiceInstance.current)
        do {
            connectionConfiguration = try settings.makeConnectionConfiguration()
        } catch {
            throw .invalidArgument("the connection settings cannot be used: \(error)")
        }
        self.configuration = configuration
        self.logger = logger
        shell = Mutex(Shell(core: SessionLockPoolState(carryingSessions: configuration.connections, waitingSessions: configuration.waitingConnections)))
        (commands, commandSink) = AsyncStream.makeStream(of: Command.self)
    }

    /// How many locks the pool holds now.
    public var heldCount: Int { shell.withLock { $0.core.heldCount } }

    /// How many server sessions the pool has open now (carrying and waiting).
    public var openSessionCount: Int { shell.withLock { $0.connections.count } }

    /// How many takers wait in this process for a waiting session to come free (every waiting
    /// session is busy with a wait on the server); they get one first come, first served.
    public var queuedTakerCount: Int { shell.withLock { $0.waitingTakers.count } }

    // MARK: - Running

    /// Keeps the pool's sessions until graceful shutdown or cancellation, then closes them.
    ///
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` if `run()` is called a second time;
    ///   ``PostgresLocksError/Code/transactionPooling`` when the connections go through a
    ///   transaction-pooling proxy (a session lock there would stay behind on a server process
    ///   the pool no longer talks to); nothing is taken then.
    public func run() async throws {
        guard started.setIfClear() else {
            throw PostgresLocksError.invalidArgument("run() was already called on this SessionLockPool; create a new one to run again")
        }
        if await PostgresConnection.probePooling(configuration: connectionConfiguration, logger: logger) == .transactionPooling {
            let error = PostgresLocksError.transactionPooling(feature: "a session lock pool")
            stop(because: error)
            throw error
        }
        await withDiscardingTaskGroup { group in
            for id in 0..<configuration.connections {
                group.addTask { await self.keepCarryingSession(id) }
            }
            await withGracefulShutdownHandler {
                for await command in commands {
                    switch command {
                    case .openWaitingSession(let id):
                        group.addTask { await self.keepWaitingSession(id) }
                    case .release(let hold):
                        group.addTask { try? await self.release(hold) }
                    }
                }
            } onGracefulShutdown: {
                self.commandSink.finish()
            }
            group.cancelAll()
        }
        commandSink.finish()
        stop(because: PostgresLocksError.connectionLost("the session lock pool has stopped"))
        logger.debug("session lock pool stopped")
    }

    /// The pool takes no more locks: every taker waiting on it is woken to find out.
    private func stop(because error: PostgresLocksError) {
        let waiting = shell.withLock { shell -> [OneShotSignal] in
            shell.stopped = error
            defer { shell.waitingTakers.removeAll(); shell.takerSignals.removeAll() }
            return Array(shell.takerSignals.values) + Array(shell.sessionUp.values)
        }
        ready.fire()
        for signal in waiting { signal.fire() }
    }

    /// One carrying session, reconnected after each failure until the pool stops.
    private func keepCarryingSession(_ id: Int) async {
        var reconnects = ReconnectSchedule(backoff: Backoff(initial: configuration.reconnectDelay, maximum: .seconds(5)))
        while !Task.isCancelled {
            let healthy = await holdSession(id)
            if Task.isCancelled { break }
            try? await Task.sleep(for: reconnects.pauseAfterSession(healthy: healthy))
        }
    }

    /// One waiting session: kept until it ends (or the pool stops), never reconnected.
    private func keepWaitingSession(_ id: Int) async {
        _ = await holdSession(id)
    }

    /// Connects session `id`, keeps it while its heartbeat answers, and marks its holds lost when
    /// it ends. Returns whether it came up.
    private func holdSession(_ id: Int) async -> Bool {
        let connection: PostgresConnection
        let pid: Int32
        do {
            connection = try await PostgresConnection.connect(configuration: connectionConfiguration, id: Int.random(in: 1...Int(Int32.max)), logger: logger)
            do {
                pid = try await connection.runStatement("SELECT pg_backend_pid()", logger: logger).rows[0].decode(Int32.self)
            } catch {
                await connection.closeDiscardingErrors()
                throw error
            }
        } catch {
            if !Task.isCancelled {
                logger.warning("session lock pool: a session could not connect", metadata: ["session": "\(id)", "error": .error(error)])
            }
            sessionEnded(id, connection: nil, reason: "it could not connect")
            return false
        }
        let wake = shell.withLock { shell -> [OneShotSignal] in
            shell.core.sessionCameUp(id)
            shell.connections[id] = connection
            // A waiting session whose taker gave up while it opened is free for the next one.
            return [shell.sessionUp.removeValue(forKey: id)].compactMap { $0 } + shell.offerWaitingSessions()
        }
        for signal in wake { signal.fire() }
        if id < configuration.connections { ready.fire() }
        let reason = await connection.watchSession(
            every: configuration.heartbeatInterval, answerLimit: configuration.responseTimeout,
            holdCount: "SELECT (pg_backend_pid() = \(pid))::int::int8",
            skipWhile: { self.isBusy(id) },
            logger: logger
        )
        sessionEnded(id, connection: connection, reason: reason ?? "the pool stopped")
        await connection.closeDiscardingErrors()
        return true
    }

    /// Whether session `id`'s heartbeat can be skipped this time: a blocking wait is in flight
    /// on it, or one of its statements was answered within the last heartbeat interval. A
    /// session whose statements stop being answered gets its heartbeat again one interval later.
    private func isBusy(_ id: Int) -> Bool {
        let interval = configuration.heartbeatInterval
        return shell.withLock { shell in
            if shell.core.sessions[id]?.busy ?? false { return true }
            guard let last = shell.lastAnswer[id] else { return false }
            return ContinuousClock.now - last < interval
        }
    }

    /// A statement of the session carrying `hold` was answered.
    private func answered(_ hold: SessionLockPoolState.HoldID) {
        let now = ContinuousClock.now
        shell.withLock { shell in
            if let session = shell.core.hold(hold)?.session { shell.lastAnswer[session] = now }
        }
    }

    /// Session `id` is gone: its holds are lost, their owners told.
    private func sessionEnded(_ id: Int, connection: PostgresConnection?, reason: String) {
        let (wake, count) = shell.withLock { shell -> ([OneShotSignal], Int) in
            if connection == nil || shell.connections[id] === connection { shell.connections[id] = nil }
            shell.lastAnswer[id] = nil
            let ended = shell.core.sessionWentDown(id)
            // Granted holds (those confirmed to their owners) are lost; holds being taken just fail.
            let lost = ended.filter { shell.confirmed.contains($0) }
            shell.confirmed.subtract(lost)
            var wake = [shell.sessionLoss.removeValue(forKey: id)].compactMap { $0 }
            for hold in lost { shell.lost[hold] = reason }
            wake += [shell.sessionUp.removeValue(forKey: id)].compactMap { $0 }
            wake += shell.offerWaitingSessions()
            return (wake, lost.count)
        }
        if count > 0 {
            LockMetrics.lost(logger: logger)
            logger.error("session lock pool: a session ended; its locks are lost", metadata: ["session": "\(id)", "locks": "\(count)", "reason": "\(reason)"])
        }
        for signal in wake { signal.fire() }
    }

    // MARK: - Taking and releasing

    /// Takes `key` in `mode`; returns the hold and the signal fired if its session ends.
    func take(_ key: LockKey, mode: LockMode, wait: LockWait) async throws -> (SessionLockPoolState.HoldID, OneShotSignal) {
        let timeout: Duration? = if case .timeout(let duration) = wait { duration } else { nil }
        _ = try wait.lockTimeoutSetting()
        let deadline = timeout.map { ContinuousClock.now + $0 }
        let started = ContinuousClock.now
        func record(_ outcome: LockMetrics.Outcome) {
            LockMetrics.record(outcome, scope: .session, mode: mode, keys: 1, waited: ContinuousClock.now - started, logger: logger, key: "\(key)")
        }
        if !ready.isFired {
            // The first session is still connecting (`run()` just started, or the server is
            // down): wait for it within the wait's deadline; `.immediately` (which does not wait
            // for the lock) within the response timeout.
            let within = wait == .immediately ? configuration.responseTimeout
                : deadline.map { $0 - ContinuousClock.now } ?? .seconds(365 * 86_400)
            if await OneShotSignal.firstFired(of: [ready], within: within) == nil {
                try Task.checkCancellation()
                if wait == .immediately { throw Self.noSession }
                throw PostgresLocksError(code: .lockTimeout, message: "no session of the session lock pool connected within the wait for advisory lock \(key)", underlying: Self.noSession)
            }
        }
        try Task.checkCancellation()
        // Without waiting, on a carrying session; again on another if the session dies meanwhile.
        var tries = 0
        while true {
            tries += 1
            let placed = try shell.withLock { shell -> (SessionLockPoolState.HoldID, PostgresConnection)? in
                if let stopped = shell.stopped { throw stopped }
                guard shell.core.liveCarryingSessions > 0 else { throw Self.noSession }
                guard let placed = shell.core.placeTry(key, mode: mode) else { return nil }
                guard let connection = shell.connections[placed.session] else {
                    shell.core.end(placed.hold)
                    throw Self.noSession
                }
                return (placed.hold, connection)
            }
            guard let (hold, connection) = placed else { break }  // in use on every live session
            let granted: Bool
            do {
                let function = AdvisoryLockSQL.lockFunction(scope: .session, mode: mode, try: true)
                granted = try await connection.runPrepared(AdvisoryLockSQL.call(function, key: key), outsideTransaction: true, logger: logger)[0].boolFromText()
                answered(hold)
            } catch {
                endHold(hold)
                if connection.isClosed && tries < 3 { continue }
                throw PostgresLocksError.wrap(error)
            }
            if granted {
                if let signal = confirm(hold) {
                    record(.acquired(contended: false))
                    return (hold, signal)
                }
                // Its session ended as the lock was granted: the lock went with it.
                if tries < 3 { continue }
                throw Self.noSession
            }
            endHold(hold)
            break
        }
        guard wait != .immediately else {
            record(.notAcquired)
            throw PostgresLocksError(code: .lockTimeout, message: "advisory lock \(key) is held by another session")
        }
        do {
            let taken = try await takeWaiting(key, mode: mode, deadline: deadline)
            record(.acquired(contended: true))
            return taken
        } catch let error as PostgresLocksError where error.code == .lockTimeout {
            record(.notAcquired)
            throw error
        }
    }

    /// No carrying session is connected.
    static var noSession: PostgresLocksError {
        .connectionLost("no session of the session lock pool is connected")
    }

    /// Takes `key` with a blocking wait on a waiting session of its own.
    private func takeWaiting(_ key: LockKey, mode: LockMode, deadline: ContinuousClock.Instant?) async throws -> (SessionLockPoolState.HoldID, OneShotSignal) {
        try PostgresLocksError.require(configuration.waitingConnections > 0, "advisory lock \(key) is held, and waitingConnections is 0: this pool does not wait")
        let session = try await reserveWaitingSession(until: deadline)
        let placed = shell.withLock { shell -> (SessionLockPoolState.HoldID, PostgresConnection)? in
            guard let connection = shell.connections[session], let placed = shell.core.placeWait(key, mode: mode, on: session) else { return nil }
            return (placed.hold, connection)
        }
        guard let (hold, connection) = placed else {
            waitEnded(on: session)
            throw PostgresLocksError.connectionLost("the session for the wait ended before it was used")
        }
        var wait = LockWait.forever
        if let deadline {
            let remaining = deadline - ContinuousClock.now
            guard remaining >= .milliseconds(1) else {
                endHold(hold)
                waitEnded(on: session)
                throw PostgresLocksError(code: .lockTimeout, message: "advisory lock \(key) was not granted within the wait")
            }
            wait = .timeout(remaining)
        }
        do {
            // No client to cancel from: a cancelled wait closes its waiting session.
            try await connection.takeSessionLock(key, mode: mode, wait: wait, canceller: nil, recordsMetrics: false, logger: logger)
        } catch {
            endHold(hold)
            waitEnded(on: session)
            throw error
        }
        // Confirmed before the session is marked idle: its heartbeat may then check on it.
        guard let signal = confirm(hold) else {
            waitEnded(on: session)
            throw PostgresLocksError(code: .lockLost, message: "the session that waited for advisory lock \(key) ended as it was granted")
        }
        waitEnded(on: session)
        return (hold, signal)
    }

    /// A waiting session reserved for one wait: an idle one, a new one (opened by `run()`), or,
    /// when all are in use, the next one to come free, first come first served (it is reserved
    /// for the first taker in the queue as it comes free).
    private func reserveWaitingSession(until deadline: ContinuousClock.Instant?) async throws -> Int {
        let (immediate, taker, turn) = try shell.withLock { shell -> ((session: Int, opens: Bool)?, UInt64, OneShotSignal?) in
            if let stopped = shell.stopped { throw stopped }
            if shell.waitingTakers.isEmpty, let reserved = shell.core.reserveWaitingSession() {
                if reserved.opens { shell.sessionUp[reserved.session] = OneShotSignal() }
                return (reserved, 0, nil)
            }
            let taker = shell.nextTaker
            shell.nextTaker += 1
            let turn = OneShotSignal()
            shell.waitingTakers.append(taker)
            shell.takerSignals[taker] = turn
            return (nil, taker, turn)
        }
        var reserved: (session: Int, opens: Bool)
        if let immediate {
            reserved = immediate
        } else {
            let within = deadline.map { $0 - ContinuousClock.now } ?? .seconds(365 * 86_400)
            _ = within > .zero ? await OneShotSignal.firstFired(of: [turn!], within: within) : nil
            // Whatever ended the wait (a hand-off, the deadline, cancellation, a stop), settle it
            // under the lock: a session handed over is used or handed on, never dropped.
            let handed = shell.withLock { shell -> (session: Int, opens: Bool)? in
                if let handed = shell.handoffs.removeValue(forKey: taker) { return handed }
                shell.waitingTakers.removeAll { $0 == taker }
                shell.takerSignals[taker] = nil
                return nil
            }
            guard let handed else {
                if let stopped = shell.withLock({ $0.stopped }) { throw stopped }
                try Task.checkCancellation()
                throw PostgresLocksError(code: .lockTimeout, message: "no session for the wait came free within the wait")
            }
            reserved = handed
            if Task.isCancelled {
                giveBack(reserved)
                throw CancellationError()
            }
        }
        guard reserved.opens else { return reserved.session }
        let up = shell.withLock { $0.sessionUp[reserved.session] }
        commandSink.yield(.openWaitingSession(reserved.session))
        if let up { await up.wait() }
        let live = shell.withLock { $0.connections[reserved.session] != nil }
        if Task.isCancelled {
            waitEnded(on: reserved.session)
            throw CancellationError()
        }
        guard live else {
            if let stopped = shell.withLock({ $0.stopped }) { throw stopped }
            throw PostgresLocksError.connectionLost("a session for the wait could not be opened")
        }
        return reserved.session
    }

    /// A reserved waiting session its taker no longer needs: free for the next (a session that
    /// was never asked to open is forgotten).
    private func giveBack(_ reserved: (session: Int, opens: Bool)) {
        let wake = shell.withLock { shell -> [OneShotSignal] in
            if reserved.opens {
                shell.core.forgetUnopenedWaitingSession(reserved.session)
                shell.sessionUp[reserved.session] = nil
            } else {
                shell.core.waitEnded(on: reserved.session)
            }
            return shell.offerWaitingSessions()
        }
        for signal in wake { signal.fire() }
    }

    /// The server granted `hold`: its loss signal if its session still carries it.
    private func confirm(_ hold: SessionLockPoolState.HoldID) -> OneShotSignal? {
        shell.withLock { shell in
            guard shell.core.granted(hold), let session = shell.core.hold(hold)?.session else {
                shell.core.end(hold)
                return nil
            }
            shell.confirmed.insert(hold)
            if let signal = shell.sessionLoss[session] { return signal }
            let signal = OneShotSignal()
            shell.sessionLoss[session] = signal
            return signal
        }
    }

    /// Ends a hold in the state; hands a waiting session that came free to the next taker.
    private func endHold(_ hold: SessionLockPoolState.HoldID) {
        let wake = shell.withLock { shell -> [OneShotSignal] in
            shell.confirmed.remove(hold)
            shell.core.end(hold)
            return shell.offerWaitingSessions()
        }
        for signal in wake { signal.fire() }
    }

    /// A blocking wait on waiting session `session` is over.
    private func waitEnded(on session: Int) {
        let wake = shell.withLock { shell -> [OneShotSignal] in
            shell.core.waitEnded(on: session)
            return shell.offerWaitingSessions()
        }
        for signal in wake { signal.fire() }
    }

    /// Releases `hold` on the session carrying it.
    func release(_ hold: SessionLockPoolState.HoldID) async throws {
        enum Found { case lost(String), gone, held(SessionLockPoolState.Hold, PostgresConnection?) }
        let found = shell.withLock { shell -> Found in
            if let reason = shell.lost.removeValue(forKey: hold) { return .lost(reason) }
            guard let entry = shell.core.hold(hold) else { return .gone }
            return .held(entry, shell.connections[entry.session])
        }
        let entry: SessionLockPoolState.Hold
        let connection: PostgresConnection?
        switch found {
        case .lost(let reason):
            throw PostgresLocksError(code: .lockLost, message: "the session carrying the lock ended (\(reason)) before it was released")
        case .gone:
            return  // released already
        case .held(let held, let carrying):
            (entry, connection) = (held, carrying)
        }
        guard let connection, !connection.isClosed else {
            endHold(hold)
            throw PostgresLocksError(code: .lockLost, message: "the session carrying advisory lock \(entry.key) ended before it was released")
        }
        do {
            let function = AdvisoryLockSQL.unlockFunction(mode: entry.mode)
            let released = try await connection.runPrepared(AdvisoryLockSQL.call(function, key: entry.key), outsideTransaction: true, logger: logger)[0].boolFromText()
            answered(hold)
            if !released {
                logger.error("session lock pool: advisory lock was not held by its session at release", metadata: ["key": "\(entry.key)"])
            }
        } catch {
            if !connection.isClosed {
                // Not confirmed on a live session: close it (before its key is free there), so
                // the lock cannot outlive its holder. Its other locks are lost with it.
                logger.error("session lock pool: could not confirm a release; closing its session", metadata: ["key": "\(entry.key)", "error": .error(error)])
                await connection.closeDiscardingErrors()
                endHold(hold)
                throw PostgresLocksError.wrap(error)
            }
            endHold(hold)
            throw PostgresLocksError(code: .lockLost, message: "the session carrying advisory lock \(entry.key) ended before it was released")
        }
        endHold(hold)
    }

    /// Whether `hold` was lost with its session (and not yet released by its owner).
    func isLost(_ hold: SessionLockPoolState.HoldID) -> Bool {
        shell.withLock { $0.lost[hold] != nil }
    }

    /// A dropped ``SessionLock``: released by `run()`.
    func releaseDropped(_ hold: SessionLockPoolState.HoldID, key: LockKey) {
        logger.warning("session lock pool: a SessionLock was dropped without release(); releasing it", metadata: ["key": "\(key)"])
        if case .terminated = commandSink.yield(.release(hold)) {
            // The pool has stopped: its sessions are closed, and the lock with them.
            shell.withLock { _ = $0.lost.removeValue(forKey: hold) }
        }
    }
}
