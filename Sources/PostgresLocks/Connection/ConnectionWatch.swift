import NIOCore
import PostgresNIO
import Synchronization

/// Tracks whether a `PostgresConnection` has closed, so statements never wait on a dead one.
///
/// PostgresNIO 1.33 writes a query to a closed channel with a `nil` promise, so the query's
/// result never arrives and the caller waits forever, ignoring cancellation. A watch is
/// created once per connection, subscribes once to its `closeFuture`, and fails every
/// statement still waiting when the connection closes.
final class ConnectionWatch: Sendable {
    private struct State {
        var closed = false
        var backendPID: Int32?
        var nextToken: UInt64 = 0
        var waiters: [UInt64: @Sendable () -> Void] = [:]
        var prepared: [String: PreparedQuery] = [:]
        var clientState: LibraryClientState?
        var localPreparation = StatementPreparation.automatic
        var runsUnnamed = false
        var fallbackLogged = false
        var statementsLost = 0
        var libraryTransactionOpen = false
        var libraryTransactionEndedAt: UInt64?
    }

    private let state = Mutex(State())

    /// The connection's transaction status, from the server's `ReadyForQuery` messages.
    let transactionStatus = TransactionStatusTracker()

    private static let registry = ObjectRegistry<PostgresConnection, ConnectionWatch>()

    /// The watch for `connection`, created on first use (see ``ObjectRegistry``: a connection
    /// made where a freed one was never inherits its transaction status or prepared statements).
    static func watch(_ connection: PostgresConnection) -> ConnectionWatch {
        let (watch, isNew) = registry.state(of: connection) { ConnectionWatch() }
        if isNew {
            let id = ObjectIdentifier(connection)
            watch.transactionStatus.install(on: connection)
            connection.closeFuture.whenComplete { _ in
                registry.remove(watch, of: id)
                watch.markClosed()
            }
        }
        return watch
    }

    /// Registers `onClose`; returns `nil` (and does not register) if the connection is already closed.
    func register(_ onClose: @escaping @Sendable () -> Void) -> UInt64? {
        state.withLock { state in
            if state.closed { return nil }
            let token = state.nextToken
            state.nextToken &+= 1
            state.waiters[token] = onClose
            return token
        }
    }

    /// The server process id of the connection, once known.
    var backendPID: Int32? {
        get { state.withLock { $0.backendPID } }
        set { state.withLock { $0.backendPID = newValue } }
    }

    /// Whether the connection has closed.
    var isClosed: Bool { state.withLock { $0.closed } }

    /// The client this connection was last leased from by a library call, whose settings and
    /// findings it follows.
    var clientState: LibraryClientState? {
        get { state.withLock { $0.clientState } }
        set { state.withLock { $0.clientState = newValue } }
    }

    /// The preparation setting for this connection when it is not leased through a client.
    var localPreparation: StatementPreparation {
        get { state.withLock { $0.localPreparation } }
        set { state.withLock { $0.localPreparation = newValue } }
    }

    /// Whether a checked transaction sent `BEGIN` on this connection and has not seen its
    /// `COMMIT` or `ROLLBACK` answered.
    var libraryTransactionOpen: Bool {
        get { state.withLock { $0.libraryTransactionOpen } }
        set { state.withLock { $0.libraryTransactionOpen = newValue } }
    }

    /// Records that the library's `COMMIT` or `ROLLBACK` was answered: the session is idle,
    /// though the `ReadyForQuery` that says so may not have been read yet (PostgresNIO ends a
    /// statement at its `CommandComplete`). Until another `ReadyForQuery` is read, a non-idle
    /// status is that statement's stale one.
    func libraryTransactionEnded() {
        let readyCount = transactionStatus.snapshot.readyCount
        state.withLock {
            $0.libraryTransactionOpen = false
            $0.libraryTransactionEndedAt = readyCount
        }
    }

    /// The transaction status as the server holds it as far as can be known without asking:
    /// the last `ReadyForQuery`'s, except that right after the library's own `COMMIT` or
    /// `ROLLBACK` (no `ReadyForQuery` read since) it is idle.
    var knownTransactionStatus: BackendMessageFramer.TransactionStatus? {
        let (status, readyCount) = transactionStatus.snapshot
        let endedAt = state.withLock { $0.libraryTransactionEndedAt }
        if status != .idle, let endedAt, endedAt == readyCount { return .idle }
        return status
    }

    /// Whether hot statements run unnamed on this connection now.
    var runsUnnamed: Bool {
        state.withLock { state in
            if let client = state.clientState {
                // Until the client's pooling probe has answered, nothing is prepared: behind a
                // transaction pooler a statement prepared now would be missing later.
                return client.runsUnnamed.load(ordering: .relaxed) || !client.probed.load(ordering: .acquiring)
            }
            return state.runsUnnamed || state.localPreparation == .disabled
        }
    }

    /// Whether server process ids may be cached for this connection: not behind transaction
    /// pooling, where each transaction may run on another process.
    var serverProcessIsStable: Bool {
        state.withLock { $0.clientState?.pooling != .transactionPooling }
    }

    /// Counts a statement the server no longer had (26000); returns how many this connection
    /// has seen.
    func countLostStatement() -> Int {
        state.withLock { state in
            state.statementsLost += 1
            return state.statementsLost
        }
    }

    /// Switches hot statements to unnamed ones (for the client this connection came from, or
    /// for this connection alone), logging the reason once.
    func fallBackToUnnamedStatements(reason: String, logger: Logger) {
        if let client = clientState {
            client.fallBackToUnnamedStatements(reason: reason, logger: logger)
            return
        }
        let first = state.withLock { state -> Bool in
            state.runsUnnamed = true
            defer { state.fallbackLogged = true }
            return !state.fallbackLogged
        }
        if first {
            logger.notice("running the library's statements unnamed on this connection from now on", metadata: ["reason": "\(reason)"])
        }
    }

    /// The statement prepared for `sql` on this connection, if any.
    func preparedStatement(_ sql: String) -> PreparedQuery? {
        state.withLock { $0.prepared[sql] }
    }

    /// Remembers the statement prepared for `sql`; returns false (and keeps nothing) when the
    /// connection already holds ``StatementPreparation/capacityPerConnection`` statements.
    @discardableResult
    func storePreparedStatement(_ prepared: PreparedQuery, for sql: String) -> Bool {
        state.withLock { state in
            guard state.prepared[sql] == nil else { return true }
            guard state.prepared.count < StatementPreparation.capacityPerConnection else { return false }
            state.prepared[sql] = prepared
            return true
        }
    }

    /// Whether another statement could be kept prepared on this connection.
    var hasRoomForPreparedStatements: Bool {
        state.withLock { $0.prepared.count < StatementPreparation.capacityPerConnection }
    }

    /// Forgets every prepared statement: the server no longer has them (`DEALLOCATE ALL` or
    /// `DISCARD ALL` drop them all at once).
    func forgetPreparedStatements() {
        state.withLock { $0.prepared.removeAll() }
    }

    func unregister(_ token: UInt64) {
        state.withLock { _ = $0.waiters.removeValue(forKey: token) }
    }

    private func markClosed() {
        let waiters = state.withLock { state -> [@Sendable () -> Void] in
            state.closed = true
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter() }
        // A statement whose answer came without its ReadyForQuery was just answered by the
        // close: its wait for the ReadyForQuery is over.
        transactionStatus.dropReadyWaiters()
    }
}

extension PostgresConnection {
    /// The server process serving this connection (`pg_backend_pid()`), asked once per connection.
    func backendPID(logger: Logger) async throws -> Int32 {
        let watch = ConnectionWatch.watch(self)
        let stable = watch.serverProcessIsStable
        if stable, let pid = watch.backendPID { return pid }
        let pid = try await runStatement("SELECT pg_backend_pid()", logger: logger).rows[0].decode(Int32.self)
        if stable { watch.backendPID = pid }
        return pid
    }

    /// Registers `onClose` to run when this connection closes (at once if it already has).
    /// Returns a function that unregisters it.
    func onClose(_ onClose: @escaping @Sendable () -> Void) -> @Sendable () -> Void {
        let watch = ConnectionWatch.watch(self)
        guard let token = watch.register(onClose) else {
            onClose()
            return {}
        }
        return { watch.unregister(token) }
    }
}
