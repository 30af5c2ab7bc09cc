import NIOCore
import NIOSSL
import PostgresNIO
import Synchronization

/// The transaction status of a connection, as its last `ReadyForQuery` reported it.
///
/// PostgresNIO reads the status byte of every `ReadyForQuery` and keeps it to itself. A small
/// inbound handler, placed in the connection's pipeline in front of PostgresNIO's own (after
/// TLS), follows the message boundaries (``BackendMessageFramer``) and records the byte; the
/// bytes pass on untouched. It is installed the first time the library sees a connection, so
/// the status is known from the next statement on.
final class TransactionStatusTracker: Sendable {
    private static let unknown: UInt64 = 0
    private static let lost: UInt64 = 1
    /// The last status byte (low 8 bits) and how many reads brought a `ReadyForQuery` (the
    /// rest), changed together.
    private let value = Atomic<UInt64>(TransactionStatusTracker.unknown)
    /// How many `CommandComplete` messages tagged `ROLLBACK` the connection has received.
    private let rollbackTags = Atomic<UInt64>(0)
    /// Whether a statement's end has been read and the `ReadyForQuery` after it has not.
    private let readyAwaited = Atomic<Bool>(false)
    /// Who waits for that `ReadyForQuery` (rarely anyone: it nearly always comes in the same
    /// read as the statement's end), and how many, read without the lock by the handler.
    private let readyWaiters = Mutex<[@Sendable () -> Void]>([])
    private let readyWaiterCount = Atomic<Int>(0)

    /// The last status seen, or nil before the first `ReadyForQuery` (or if the stream could
    /// not be followed).
    var status: BackendMessageFramer.TransactionStatus? { snapshot.status }

    /// The last status seen and how many reads had brought a `ReadyForQuery` then (a count that
    /// moves whenever a newer status arrives).
    var snapshot: (status: BackendMessageFramer.TransactionStatus?, readyCount: UInt64) {
        let current = value.load(ordering: .acquiring)
        return (BackendMessageFramer.TransactionStatus(rawValue: UInt8(truncatingIfNeeded: current)), current >> 8)
    }

    /// Records the status of the last `ReadyForQuery` of one read.
    func record(_ status: BackendMessageFramer.TransactionStatus) {
        update { current in ((current >> 8) + 1) << 8 | UInt64(status.rawValue) }
    }

    /// How many `ROLLBACK` command tags the connection has received, or nil if the stream is
    /// not followed (the handler could not be placed, or lost the message boundaries). Read
    /// before and after a statement the caller alone sends (the connection is its own), it
    /// tells whether that statement was answered `ROLLBACK`: the handler reads every message
    /// before PostgresNIO does, so the count has moved before the statement's result arrives.
    ///
    /// Nil too until a `ReadyForQuery` has been read: a well-formed one (type, length 5, a
    /// known status) is the proof that the handler, placed between two reads, follows the
    /// messages in step.
    var rollbackTagCount: UInt64? {
        let count = rollbackTags.load(ordering: .acquiring)
        let current = value.load(ordering: .acquiring)
        return current & 0xff == Self.lost || current >> 8 == 0 ? nil : count
    }

    /// Whether the handler follows the connection's messages: false once it could not be
    /// placed or lost the message boundaries (then no status will come).
    var isFollowing: Bool {
        value.load(ordering: .acquiring) & 0xff != Self.lost
    }

    /// Whether a statement's end (`CommandComplete`, `EmptyQueryResponse`, `ErrorResponse`) has
    /// been read and the `ReadyForQuery` that follows it has not. False when the stream is not
    /// followed.
    ///
    /// PostgresNIO ends a statement at its `CommandComplete`, but a statement outside a
    /// transaction block commits only when the server handles the `Sync` after it, before its
    /// `ReadyForQuery`: a backend ended in between (terminated while a deferred trigger or the
    /// commit's `NOTIFY` queue lock waits) sends the buffered `CommandComplete` with its fatal
    /// error, and the statement looks done though it rolled back.
    var isAwaitingReady: Bool {
        readyAwaited.load(ordering: .sequentiallyConsistent) && isFollowing
    }

    /// Calls `action` once no `ReadyForQuery` is awaited (see ``isAwaitingReady``): at once if
    /// none is, else when it has been read or the stream can no longer be followed. Not called
    /// if the connection closes first; the caller watches for that.
    func whenReady(_ action: @escaping @Sendable () -> Void) {
        guard isAwaitingReady else { return action() }
        let now = readyWaiters.withLock { waiters -> Bool in
            guard isAwaitingReady else { return true }
            waiters.append(action)
            readyWaiterCount.add(1, ordering: .sequentiallyConsistent)
            return false
        }
        if now {
            action()
        } else if !isAwaitingReady {
            // The handler cleared the flag between the check and the registration.
            releaseReadyWaiters()
        }
    }

    /// Records whether a `ReadyForQuery` is awaited after one read, and wakes the waiters when
    /// none is.
    fileprivate func recordAwaitingReady(_ awaiting: Bool) {
        readyAwaited.store(awaiting, ordering: .sequentiallyConsistent)
        if !awaiting && readyWaiterCount.load(ordering: .sequentiallyConsistent) > 0 { releaseReadyWaiters() }
    }

    /// Forgets the waiters without calling them: the connection closed, and its statements were
    /// answered by the close (what they hold is freed with them).
    func dropReadyWaiters() {
        readyWaiters.withLock { waiters in
            waiters.removeAll()
            readyWaiterCount.store(0, ordering: .sequentiallyConsistent)
        }
    }

    private func releaseReadyWaiters() {
        let waiters = readyWaiters.withLock { waiters in
            defer {
                waiters.removeAll()
                readyWaiterCount.store(0, ordering: .sequentiallyConsistent)
            }
            return waiters
        }
        for waiter in waiters { waiter() }
    }

    /// Adds `count` `ROLLBACK` command tags read from the stream.
    fileprivate func recordRollbackTags(_ count: Int) {
        rollbackTags.add(UInt64(count), ordering: .releasing)
    }

    /// Sets the status without counting a `ReadyForQuery`: what the tracker holds while the
    /// `ReadyForQuery` of a statement that already completed is still in flight (tests
    /// recreate that moment with it; it cannot be caused from outside on demand).
    func overwriteStatusInFlight(_ status: BackendMessageFramer.TransactionStatus) {
        update { current in (current >> 8) << 8 | UInt64(status.rawValue) }
    }

    /// Forgets the last status: the connection failed (its server session may be gone, and
    /// the last `ReadyForQuery` no longer says anything about it). The next check asks again.
    func forget() {
        // A stream that could not be followed stays so.
        update { current in current & 0xff == Self.lost ? nil : (current >> 8) << 8 | Self.unknown }
    }

    fileprivate func recordLost() {
        update { current in (current >> 8) << 8 | Self.lost }
        // Nothing will say when a statement is done: nobody waits for it.
        releaseReadyWaiters()
    }

    /// Replaces the value with `change(current)` unless that is nil.
    private func update(_ change: (UInt64) -> UInt64?) {
        var current = value.load(ordering: .acquiring)
        while let desired = change(current) {
            let (exchanged, original) = value.compareExchange(expected: current, desired: desired, ordering: .acquiringAndReleasing)
            if exchanged { return }
            current = original
        }
    }

    /// Places the handler in `connection`'s pipeline, on its event loop: before any statement
    /// the caller sends afterwards (tasks on an event loop run in order).
    func install(on connection: PostgresConnection) {
        guard let channel = Self.channel(of: connection) else {
            recordLost()
            return
        }
        channel.eventLoop.execute {
            let operations = channel.pipeline.syncOperations
            let handler = TransactionStatusHandler(tracker: self)
            do {
                if let tls = try? operations.context(handlerType: NIOSSLClientHandler.self) {
                    try operations.addHandler(handler, position: .after(tls.handler))
                } else {
                    try operations.addHandler(handler, position: .first)
                }
            } catch {
                self.recordLost()
            }
        }
    }
}

extension TransactionStatusTracker {
    /// The connection's channel. PostgresNIO 1.33 keeps it internal; it is read through the
    /// connection's reflection (`channel`, its one stored channel). A test
    /// (`transactionStatusIsTrackedOnPostgresNIOConnections`) fails if a later version renames it.
    static func channel(of connection: PostgresConnection) -> (any Channel)? {
        Mirror(reflecting: connection).children.first { $0.label == "channel" }?.value as? any Channel
    }
}

/// Passes every inbound byte on, recording the transaction status of each `ReadyForQuery`.
private final class TransactionStatusHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let tracker: TransactionStatusTracker
    private var framer = BackendMessageFramer()

    init(tracker: TransactionStatusTracker) {
        self.tracker = tracker
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !framer.isLost {
            let buffer = unwrapInboundIn(data)
            let seen = buffer.withUnsafeReadableBytes { framer.consume($0) }
            if seen.rollbackTags > 0 { tracker.recordRollbackTags(seen.rollbackTags) }
            if let status = seen.status { tracker.record(status) }
            if let awaiting = seen.awaitingReady { tracker.recordAwaitingReady(awaiting) }
            if framer.isLost { tracker.recordLost() }
        }
        context.fireChannelRead(data)
    }
}
