import ArgumentParser
import Foundation
import Histogram
import Logging
import NIOCore
import PglockHarness
import PostgresLocks
import PostgresNIO

/// How the `lock` scenario's worker loop is driven, to separate the library's cost from the driver's.
enum LockVariant: String, Codable, CaseIterable, Sendable, ExpressibleByArgument {
    /// `PostgresConnection.withAdvisoryLock` on a dedicated connection per worker.
    case connection
    /// `PostgresClient.withAdvisoryLock`: a pool lease per transaction.
    case library
    /// Plain PostgresNIO async/await, three prepared statements, dedicated connection.
    case rawPrepared = "raw-prepared"
    /// Plain PostgresNIO futures chained on the event loop, three prepared statements.
    case rawFutures = "raw-futures"
    /// Plain PostgresNIO futures chained on the event loop, three unnamed (unprepared) statements.
    case rawUnnamed = "raw-unnamed"
    /// Plain PostgresNIO async/await in `PostgresClient.withConnection`, three prepared
    /// statements: what `library` does, without the library.
    case rawPooled = "raw-pooled"

    /// Whether the variant leases a connection from a pool per transaction.
    var isPooled: Bool { self == .library || self == .rawPooled }

    /// The side `ours` is compared with in the same run: plain PostgresNIO through the pool for
    /// the pooled variants, futures chained on the event loop for the others; none for the
    /// ceilings themselves.
    var driverCeiling: LockVariant? {
        switch self {
        case .library: return .rawPooled
        case .connection, .rawPrepared, .rawUnnamed: return .rawFutures
        case .rawFutures, .rawPooled: return nil
        }
    }
}

struct BeginStatement: PostgresPreparedStatement {
    static let sql = "BEGIN"
    typealias Row = ()
    func makeBindings() -> PostgresBindings { PostgresBindings() }
    func decodeRow(_ row: PostgresRow) throws -> Row {}
}

struct CommitStatement: PostgresPreparedStatement {
    static let sql = "COMMIT"
    typealias Row = ()
    func makeBindings() -> PostgresBindings { PostgresBindings() }
    func decodeRow(_ row: PostgresRow) throws -> Row {}
}

/// A prepared statement of the driver ceilings that binds one key and returns one column.
protocol OneKeyStatement: PostgresPreparedStatement where Row: PostgresDecodable {
    var key: Int64 { get }
}

extension OneKeyStatement {
    func makeBindings() -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(key)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// `pg_advisory_xact_lock($1)`, the lock of the `lock` scenario's ceilings.
struct XactLockStatement: OneKeyStatement {
    static let sql = "SELECT 1::int4 FROM pg_advisory_xact_lock($1)"
    typealias Row = Int32
    var key: Int64
}

/// `pg_advisory_lock($1)`, the lock of the `lock-session` ceiling.
struct SessionLockStatement: OneKeyStatement {
    static let sql = "SELECT 1::int4 FROM pg_advisory_lock($1)"
    typealias Row = Int32
    var key: Int64
}

/// `pg_advisory_unlock($1)`, the unlock of the `lock-session` ceiling.
struct SessionUnlockStatement: OneKeyStatement {
    static let sql = "SELECT pg_advisory_unlock($1)"
    typealias Row = Bool
    var key: Int64
}

/// Mutable state confined to one event loop.
final class EventLoopBox<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

extension BenchCommand {
    /// Opens one dedicated connection per worker and runs `body` with them, closing them after.
    static func withDedicatedConnections<Result: Sendable>(
        settings: ConnectionSettings,
        count: Int,
        logger: Logger,
        _ body: ([PostgresConnection]) async throws -> Result
    ) async throws -> Result {
        let configuration = try settings.makeConnectionConfiguration()
        let group = PostgresClient.defaultEventLoopGroup
        var connections: [PostgresConnection] = []
        do {
            for id in 0..<count {
                let connection = try await PostgresConnection.connect(on: group.next(), configuration: configuration, id: id, logger: logger)
                connection.statementPreparation = preparation
                connections.append(connection)
            }
            let result = try await body(connections)
            for connection in connections { try? await connection.close() }
            return result
        } catch {
            for connection in connections { try? await connection.close() }
            throw error
        }
    }

    /// One worker's loop on its own connection over `span`, in the chosen variant.
    static func runLockWorker(
        variant: LockVariant,
        connection: PostgresConnection,
        keys: Int,
        span: BenchSpan,
        logger: Logger
    ) async throws -> Histogram<UInt64> {
        var generator = SystemRandomNumberGenerator()
        switch variant {
        case .library, .connection, .rawPooled:
            return try await span.loop { _ in
                let key = LockKey.int64(Int64.random(in: 1...Int64(keys), using: &generator))
                try await connection.withAdvisoryLock(key, logger: logger) { _ in }
            }
        case .rawPrepared:
            return try await span.loop { _ in
                let key = Int64.random(in: 1...Int64(keys), using: &generator)
                _ = try await connection.execute(BeginStatement(), logger: logger)
                for try await _ in try await connection.execute(XactLockStatement(key: key), logger: logger) {}
                _ = try await connection.execute(CommitStatement(), logger: logger)
            }
        case .rawFutures:
            let begin = try await connection.prepare(query: "BEGIN").get()
            let lock = try await connection.prepare(query: "SELECT 1::int4 FROM pg_advisory_xact_lock($1)").get()
            let commit = try await connection.prepare(query: "COMMIT").get()
            return try await chainOnEventLoop(connection.eventLoop, keys: keys, span: span) { key in
                begin.execute().flatMap { _ in lock.execute([PostgresData(int64: key)]) }.flatMap { _ in commit.execute() }.map { _ in }
            }
        case .rawUnnamed:
            return try await chainOnEventLoop(connection.eventLoop, keys: keys, span: span) { key in
                connection.query("BEGIN", logger: logger)
                    .flatMap { _ in connection.query("SELECT 1::int4 FROM pg_advisory_xact_lock(\(key))", logger: logger) }
                    .flatMap { _ in connection.query("COMMIT", logger: logger) }
                    .map { _ in }
            }
        }
    }
}

extension BenchCommand {
    /// One session lock and unlock in plain PostgresNIO through a pool (the driver ceiling of
    /// `lock-session`).
    static func rawPooledSessionLock(_ client: PostgresClient, key: Int64, logger: Logger) async throws {
        try await client.withConnection { connection in
            for try await _ in try await connection.execute(SessionLockStatement(key: key), logger: logger) {}
            for try await released in try await connection.execute(SessionUnlockStatement(key: key), logger: logger) where !released {
                throw PostgresLocksError(code: .lockLost, message: "advisory lock \(key) was not held at unlock")
            }
        }
    }

    /// One lock transaction in plain PostgresNIO through a pool (``LockVariant/rawPooled``).
    static func rawPooledLockTransaction(_ client: PostgresClient, key: Int64, logger: Logger) async throws {
        try await client.withConnection { connection in
            _ = try await connection.execute(BeginStatement(), logger: logger)
            for try await _ in try await connection.execute(XactLockStatement(key: key), logger: logger) {}
            _ = try await connection.execute(CommitStatement(), logger: logger)
        }
    }
}

extension BenchCommand {
    /// Runs `transaction` (one lock transaction as a chain of futures) back to back on
    /// `eventLoop` until the span's end, each started from the previous one's callback with no
    /// task in between, and returns the latencies measured after its warm-up.
    static func chainOnEventLoop(
        _ eventLoop: any EventLoop,
        keys: Int,
        span: BenchSpan,
        transaction: @escaping @Sendable (Int64) -> EventLoopFuture<Void>
    ) async throws -> Histogram<UInt64> {
        let clock = span.clock
        let box = EventLoopBox(LatencyStats.emptyHistogram())
        let promise = eventLoop.makePromise(of: Void.self)
        @Sendable func step() {
            let began = clock.now
            if began >= span.end { promise.succeed(); return }
            transaction(Int64.random(in: 1...Int64(keys))).whenComplete { result in
                switch result {
                case .failure(let error): promise.fail(error)
                case .success:
                    if began >= span.measureFrom { box.value.recordMicros(since: began, clock: clock) }
                    step()
                }
            }
        }
        eventLoop.execute { step() }
        try await promise.futureResult.get()
        return box.value
    }
}
