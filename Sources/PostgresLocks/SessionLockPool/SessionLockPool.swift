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
        /// Fired when a session comes up or fails to (waiting sessions).
        var sessionUp: [Int: OneShotSignal] = [:]
        /// Fired when a hold's session ends.
        var lossSignals: [SessionLockPoolState.HoldID: OneShotSignal] = [:]
        /// Holds lost with their session and not yet released by their owner.
        var lost: [SessionLockPoolState.HoldID: String] = [:]
        /// Takers waiting for a waiting session, first come first served.
        var waitingTakers: [OneShotSignal] = []
        var stopped = false
    }

    /// Creates a pool; nothing is sent to the server until ``run()``.
    ///
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` for counts or durations out of range,
    ///   or connection settings that cannot be turned into a configuration.
    public init(configuration: Configuration, logger: Logger) throws(PostgresLocksError) {
        try configuration.validate()
        var settings = configuration.connection
        if settings.applicationName == nil { settings.applicationName = "pglocks-locks" }
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

    // MARK: - Running

    /// Keeps the pool's sessions until graceful shutdown or cancellation, then closes them.
    ///
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` if `run()` is called a second time.
    public func run() async throws {
        guard started.setIfClear() else {
            throw PostgresLocksError.invalidArgument("run() was already called on this SessionLockPool; create a new one to run again")
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
        let waiting = shell.withLock { shell -> [OneShotSignal] in
            shell.stopped = true
            defer { shell.waitingTakers.removeAll() }
            return shell.waitingTakers + Array(shell.sessionUp.values)
        }
        ready.fire()
        for signal in waiting { signal.fire() }
        logger.debug("session lock pool stopped")
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
                logger.warning("session lock pool: a session could not connect", metadata: ["session": "\(id)", "error": "\(error)"])
            }
            sessionEnded(id, connection: nil, reason: "it could not connect")
            return false
        }
        let up = shell.withLock { shell -> [OneShotSignal] in
            shell.core.sessionCameUp(id)
            shell.connections[id] = connection
            return [shell.sessionUp.removeValue(forKey: id)].compactMap { $0 }
        }
        for signal in up { signal.fire() }
        if id < configuration.connections { ready.fire() }
        let reason = await connection.watchSession(
            every: configuration.heartbeatInterval, answerLimit: configuration.responseTimeout,
            holdCount: "SELECT (pg_backend_pid() = \(pid))::int::int8", logger: logger
        )
        sessionEnded(id, connection: connection, reason: reason ?? "the pool stopped")
        await connection.closeDiscardingErrors()
        return true
    }

    /// Session `id` is gone: its holds are lost, their owners told.
    private func sessionEnded(_ id: Int, connection: PostgresConnection?, reason: String) {
        let (signals, count) = shell.withLock { shell -> ([OneShotSignal], Int) in
            if connection == nil || shell.connections[id] === connection { shell.connections[id] = nil }
            let lost = shell.core.sessionWentDown(id)
            var signals = lost.compactMap { shell.lossSignals.removeValue(forKey: $0) }
            for hold in lost { shell.lost[hold] = reason }
            signals += [shell.sessionUp.removeValue(forKey: id)].compactMap { $0 }
            if !shell.waitingTakers.isEmpty { signals.append(shell.waitingTakers.removeFirst()) }
            return (signals, lost.count)
        }
        if count > 0 {
            LockMetrics.lost(logger: logger)
            logger.error("session lock pool: a session ended; its locks are lost", metadata: ["session": "\(id)", "locks": "\(count)", "reason": "\(reason)"])
        }
        for signal in signals { signal.fire() }
    }

    // MARK: - Taking and releasing

    /// Takes `key` in `mode`; returns the hold and the signal fired if its session ends.
    func take(_ key: LockKey, mode: LockMode, wait: LockWait) async throws -> (SessionLockPoolState.HoldID, OneShotSignal) {
        let timeout = try wait.lockTimeoutSetting().flatMap { _ -> Duration? in if case .timeout(let d) = wait { d } else { nil } }
        let deadline = timeout.map { ContinuousClock.now + $0 }
        let started = ContinuousClock.now
        await ready.wait()
        try Task.checkCancellation()
        func record(_ outcome: LockMetrics.Outcome) {
            LockMetrics.record(outcome, scope: .session, mode: mode, keys: 1, waited: ContinuousClock.now - started, logger: logger, key: "\(key)")
        }
        // Without waiting, on a carrying session; again on another if the session dies meanwhile.
        for _ in 0..<3 {
            let placed = try shell.withLock { shell -> (SessionLockPoolState.HoldID, PostgresConnection)? in
                if shell.stopped { throw PostgresLocksError.connectionLost("the session lock pool has stopped") }
                guard let placed = shell.core.placeTry(key, mode: mode) else { return nil }
                guard let connection = shell.connections[placed.session] else {
                    shell.core.end(placed.hold)
                    return nil
                }
                return (placed.hold, connection)
            }
            guard let (hold, connection) = placed else { break }
            let granted: Bool
            do {
                let function = AdvisoryLockSQL.lockFunction(scope: .session, mode: mode, try: true)
                granted = try await connection.runPrepared(AdvisoryLockSQL.call(function, key: key), outsideTransaction: true, logger: logger)[0].boolFromText()
            } catch {
                endHold(hold)
                if connection.isClosed { continue }
                throw PostgresLocksError.wrap(error)
            }
            if granted {
                if let signal = confirm(hold) {
                    record(.acquired(contended: false))
                    return (hold, signal)
                }
                continue  // its session ended as the lock was granted: the lock went with it
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
            try await connection.takeSessionLock(key, mode: mode, wait: wait, canceller: nil, logger: logger)
        } catch {
            endHold(hold)
            waitEnded(on: session)
            throw error
        }
        waitEnded(on: session)
        guard let signal = confirm(hold) else {
            throw PostgresLocksError(code: .lockLost, message: "the session that waited for advisory lock \(key) ended as it was granted")
        }
        return (hold, signal)
    }

    /// A waiting session reserved for one wait: an idle one, a new one (opened by `run()`), or,
    /// when all are in use, the next one to come free, first come first served.
    private func reserveWaitingSession(until deadline: ContinuousClock.Instant?) async throws -> Int {
        while true {
            let (reserved, turn) = try shell.withLock { shell -> ((session: Int, opens: Bool)?, OneShotSignal?) in
                if shell.stopped { throw PostgresLocksError.connectionLost("the session lock pool has stopped") }
                if let reserved = shell.core.reserveWaitingSession() {
                    if reserved.opens { shell.sessionUp[reserved.session] = OneShotSignal() }
                    return (reserved, shell.sessionUp[reserved.session])
                }
                let turn = OneShotSignal()
                shell.waitingTakers.append(turn)
                return (nil, turn)
            }
            if let reserved {
                guard reserved.opens, let up = turn else { return reserved.session }
                commandSink.yield(.openWaitingSession(reserved.session))
                await up.wait()
                let live = shell.withLock { $0.connections[reserved.session] != nil }
                if Task.isCancelled {
                    waitEnded(on: reserved.session)
                    throw CancellationError()
                }
                guard live else { throw PostgresLocksError.connectionLost("a session for the wait could not be opened") }
                return reserved.session
            }
            let remaining = deadline.map { $0 - ContinuousClock.now } ?? .seconds(86_400)
            let fired = remaining > .zero ? await OneShotSignal.firstFired(of: [turn!], within: remaining) : nil
            if fired == nil {
                shell.withLock { shell in shell.waitingTakers.removeAll { $0 === turn! } }
                try Task.checkCancellation()
                if deadline != nil, ContinuousClock.now >= deadline! {
                    throw PostgresLocksError(code: .lockTimeout, message: "no session for the wait came free within the wait")
                }
            }
        }
    }

    /// The server granted `hold`: true (with its loss signal) if its session still carries it.
    private func confirm(_ hold: SessionLockPoolState.HoldID) -> OneShotSignal? {
        shell.withLock { shell in
            guard shell.core.granted(hold) else {
                shell.core.end(hold)
                return nil
            }
            let signal = OneShotSignal()
            shell.lossSignals[hold] = signal
            return signal
        }
    }

    /// Ends a hold in the state; wakes a taker if a waiting session came free.
    private func endHold(_ hold: SessionLockPoolState.HoldID) {
        let turn = shell.withLock { shell -> OneShotSignal? in
            shell.lossSignals[hold] = nil
            guard let session = shell.core.end(hold), let entry = shell.core.sessions[session], entry.isWaiting,
                  !entry.busy, entry.holds.isEmpty, !shell.waitingTakers.isEmpty else { return nil }
            return shell.waitingTakers.removeFirst()
        }
        turn?.fire()
    }

    /// A blocking wait on waiting session `session` is over.
    private func waitEnded(on session: Int) {
        let turn = shell.withLock { shell -> OneShotSignal? in
            shell.core.waitEnded(on: session)
            guard let entry = shell.core.sessions[session], entry.holds.isEmpty, !shell.waitingTakers.isEmpty else { return nil }
            return shell.waitingTakers.removeFirst()
        }
        turn?.fire()
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
            if !released {
                logger.error("session lock pool: advisory lock was not held by its session at release", metadata: ["key": "\(entry.key)"])
            }
        } catch {
            endHold(hold)
            if connection.isClosed {
                throw PostgresLocksError(code: .lockLost, message: "the session carrying advisory lock \(entry.key) ended before it was released")
            }
            // Not confirmed on a live session: close it, so the lock cannot outlive its holder.
            logger.error("session lock pool: could not confirm a release; closing its session", metadata: ["key": "\(entry.key)", "error": "\(error)"])
            await connection.closeDiscardingErrors()
            throw PostgresLocksError.wrap(error)
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
        if case .dropped = commandSink.yield(.release(hold)) {
            // The pool has stopped: its sessions are closed, and the lock with them.
            shell.withLock { _ = $0.lost.removeValue(forKey: hold) }
        }
    }
}
