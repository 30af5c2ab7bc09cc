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
    private static let unknown: UInt8 = 0
    private static let lost: UInt8 = 1
    private let value = Atomic<UInt8>(TransactionStatusTracker.unknown)

    /// The last status seen, or nil before the first `ReadyForQuery` (or if the stream could
    /// not be followed).
    var status: BackendMessageFramer.TransactionStatus? {
        BackendMessageFramer.TransactionStatus(rawValue: value.load(ordering: .acquiring))
    }

    fileprivate func record(_ status: BackendMessageFramer.TransactionStatus) {
        value.store(status.rawValue, ordering: .releasing)
    }

    /// Forgets the last status: the connection failed (its server session may be gone, and
    /// the last `ReadyForQuery` no longer says anything about it). The next check asks again.
    func forget() {
        var current = value.load(ordering: .acquiring)
        while current != Self.lost {  // a stream that could not be followed stays so
            let (exchanged, original) = value.compareExchange(expected: current, desired: Self.unknown, ordering: .acquiringAndReleasing)
            if exchanged { return }
            current = original
        }
    }

    fileprivate func recordLost() {
        value.store(Self.lost, ordering: .releasing)
    }

    /// Whether the handler could be placed (see ``channel(of:)``).
    var isInstalled: Bool { value.load(ordering: .acquiring) != Self.lost }

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
            let status = buffer.withUnsafeReadableBytes { framer.consume($0) }
            if let status { tracker.record(status) }
            if framer.isLost { tracker.recordLost() }
        }
        context.fireChannelRead(data)
    }
}
