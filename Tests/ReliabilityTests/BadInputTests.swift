import EphemeralPostgres
import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import PostgresQueue
import Testing
import PglockHarness

/// One bad input and the typed error it must get; the table is in README.md next to this file.
struct BadInput: Sendable, CustomTestStringConvertible {
    /// The input, as shown in the table.
    let input: String
    /// The expected error code's name.
    let code: String
    let attempt: @Sendable () async throws -> Void

    init(_ input: String, _ code: String, _ attempt: @escaping @Sendable () async throws -> Void) {
        self.input = input
        self.code = code
        self.attempt = attempt
    }

    var testDescription: String { "\(input) → \(code)" }
}

/// One bad input given where a write was possible: the attempt runs against a database with an
/// empty table `written`, and nothing may be in it (nor any job, nor any lock) afterwards.
struct BadWrite: Sendable, CustomTestStringConvertible {
    let input: String
    let code: String
    let attempt: @Sendable (TestContext) async throws -> Void

    init(_ input: String, _ code: String, _ attempt: @escaping @Sendable (TestContext) async throws -> Void) {
        self.input = input
        self.code = code
        self.attempt = attempt
    }

    var testDescription: String { "\(input) → \(code), nothing written" }
}

/// The name of a typed error's code.
func codeName(of error: any Error) -> String {
    switch error {
    case let error as PostgresLocksError: return error.code.name
    case let error as ConnectionSettingsError: return error.code.name
    case let error as EphemeralPostgresError: return error.code.name
    case is DecodingError: return "DecodingError"
    default: return "untyped \(type(of: error))"
    }
}

private let hostile = #"x"; DROP TABLE written; --"#

/// Names that are not plain identifiers.
let badNames: [String] = [
    "", #"a"b"#, "a;b", "a\u{0}b", String(repeating: "a", count: 64), "1abc", "a b", "é", "a-b", "a.b", hostile,
]

/// Every place that takes a table, schema, column or channel name.
struct NameConsumer: Sendable, CustomTestStringConvertible {
    let name: String
    let use: @Sendable (String) throws -> Void
    var testDescription: String { name }
}

let nameConsumers: [NameConsumer] = [
    NameConsumer(name: "SQLIdentifier(_:)") { _ = try SQLIdentifier($0) },
    NameConsumer(name: "QualifiedName(schema:_:) schema") { _ = try QualifiedName(schema: $0, "t") },
    NameConsumer(name: "QualifiedName(schema:_:) name") { _ = try QualifiedName(schema: "s", $0) },
    NameConsumer(name: "GaplessCounter(table:)") { _ = try GaplessCounter(table: $0) },
    NameConsumer(name: "GaplessCounter(schema:)") { _ = try GaplessCounter(table: "t", schema: $0) },
    NameConsumer(name: "GaplessCounter(scopeColumn:)") { _ = try GaplessCounter(table: "t", scopeColumn: $0) },
    NameConsumer(name: "GaplessCounter(numberColumn:)") { _ = try GaplessCounter(table: "t", numberColumn: $0) },
    NameConsumer(name: "JobQueue(schema:) (schema and channel)") { _ = try JobQueue(schema: $0) },
    NameConsumer(name: "LeaderElection.Configuration(termsTable:)") {
        _ = try LeaderElection.Configuration(name: "e", connection: ConnectionSettings(host: .tcp("h"), user: "u"), termsTable: $0)
    },
    NameConsumer(name: "LeaderElection.Configuration(schema:)") {
        _ = try LeaderElection.Configuration(name: "e", connection: ConnectionSettings(host: .tcp("h"), user: "u"), termsTable: "t", schema: $0)
    },
    NameConsumer(name: "RowLock(of:)") { _ = try RowLock(.update, of: [$0]) },
]

private func election(_ change: (inout LeaderElection.Configuration) -> Void) -> @Sendable () async throws -> Void {
    var configuration = LeaderElection.Configuration(name: "e", connection: ConnectionSettings(host: .tcp("h"), user: "u"))
    change(&configuration)
    let final = configuration
    return { _ = try LeaderElection(configuration: final, logger: Logger(label: "bad-input")) }
}

/// Bad inputs rejected before anything reaches a server.
let pureBadInputs: [BadInput] = [
    // Keys and key texts.
    BadInput(#"LockKey(text: "")"#, "invalidArgument") { _ = try LockKey(text: "") },
    BadInput(#"LockKey(text: " 42")"#, "invalidArgument") { _ = try LockKey(text: " 42") },
    BadInput(#"LockKey(text: "42 ")"#, "invalidArgument") { _ = try LockKey(text: "42 ") },
    BadInput(#"LockKey(text: "a\0b")"#, "invalidArgument") { _ = try LockKey(text: "a\u{0}b") },
    BadInput(#"LockKey(text: "a\nb")"#, "invalidArgument") { _ = try LockKey(text: "a\nb") },
    BadInput(#"LockKey(text: 1025 bytes)"#, "invalidArgument") { _ = try LockKey(text: String(repeating: "k", count: 1025)) },
    BadInput(#"LockKey(text: "9223372036854775808")"#, "invalidArgument") { _ = try LockKey(text: "9223372036854775808") },
    BadInput(#"LockKey(text: "-9223372036854775809")"#, "invalidArgument") { _ = try LockKey(text: "-9223372036854775809") },
    BadInput(#"LockKey(text: "2147483648:1")"#, "invalidArgument") { _ = try LockKey(text: "2147483648:1") },
    BadInput(#"LockKey(text: "1:-2147483649")"#, "invalidArgument") { _ = try LockKey(text: "1:-2147483649") },
    BadInput(#"LockKey.named("")"#, "invalidArgument") { _ = try LockKey.named("") },
    BadInput(#"LockKey.named("a\0")"#, "invalidArgument") { _ = try LockKey.named("a\u{0}") },
    BadInput(#"LockKey.named(1025 bytes)"#, "invalidArgument") { _ = try LockKey.named(String(repeating: "n", count: 1025)) },
    BadInput(#"LockKey decoded from JSON "tenant-a" (a name)"#, "DecodingError") { _ = try JSONDecoder().decode([LockKey].self, from: Data(#"["tenant-a"]"#.utf8)) },
    BadInput(#"LockKey decoded from JSON 42 (a number)"#, "DecodingError") { _ = try JSONDecoder().decode([LockKey].self, from: Data("[42]".utf8)) },
    // Durations.
    BadInput(#"parseDuration("")"#, "invalidArgument") { _ = try parseDuration("") },
    BadInput(#"parseDuration("abc")"#, "invalidArgument") { _ = try parseDuration("abc") },
    BadInput(#"parseDuration("-5s")"#, "invalidArgument") { _ = try parseDuration("-5s") },
    BadInput(#"parseDuration("0")"#, "invalidArgument") { _ = try parseDuration("0") },
    BadInput(#"parseDuration("0ms")"#, "invalidArgument") { _ = try parseDuration("0ms") },
    BadInput(#"parseDuration("nan")"#, "invalidArgument") { _ = try parseDuration("nan") },
    BadInput(#"parseDuration("inf")"#, "invalidArgument") { _ = try parseDuration("inf") },
    BadInput(#"parseDuration("1e400s")"#, "invalidArgument") { _ = try parseDuration("1e400s") },
    BadInput(#"parseDuration("25d")"#, "invalidArgument") { _ = try parseDuration("25d") },
    BadInput(#"parseDuration("999999h")"#, "invalidArgument") { _ = try parseDuration("999999h") },
    BadInput("LeaderElection: heartbeatInterval 0", "invalidArgument", election { $0.heartbeatInterval = .zero }),
    BadInput("LeaderElection: responseTimeout -1 s", "invalidArgument", election { $0.responseTimeout = .seconds(-1) }),
    BadInput("LeaderElection: retryInterval 30 days", "invalidArgument", election { $0.retryInterval = .seconds(30 * 86_400) }),
    BadInput("LeaderElection: maximumReconnectDelay < reconnectDelay", "invalidArgument", election { $0.maximumReconnectDelay = .milliseconds(1) }),
    BadInput(#"LeaderElection: name """#, "invalidArgument", election { $0.name = "" }),
    BadInput(#"LeaderElection: name with NUL"#, "invalidArgument", election { $0.name = "a\u{0}" }),
    BadInput("JobQueue(notifyDebounce: -1 ms)", "invalidArgument") { _ = try JobQueue(schema: "q", notifyDebounce: .milliseconds(-1)) },
    BadInput("JobQueue(schema: 59 bytes): channel <schema>_jobs over 63 bytes", "invalidArgument") { _ = try JobQueue(schema: String(repeating: "s", count: 59)) },
    BadInput("NewJob(schedule: .after(-1 s))", "invalidArgument") { _ = try NewJob(kind: "k", schedule: .after(.seconds(-1))) },
    BadInput("NewJob(maxAttempts: 0)", "invalidArgument") { _ = try NewJob(kind: "k", maxAttempts: 0) },
    BadInput(#"NewJob(kind: "")"#, "invalidArgument") { _ = try NewJob(kind: "") },
    BadInput("NewJob(queue: with NUL)", "invalidArgument") { _ = try NewJob(kind: "k", queue: "a\u{0}") },
    BadInput("GaplessCounter(maximumAttempts: 0)", "invalidArgument") { _ = try GaplessCounter(table: "t", maximumAttempts: 0) },
    // Database URLs (more rows: PostgresLocksTests/ConnectionSettingsTests.malformedURLsGetATypedErrorNamingThePart).
    BadInput(#"URL """#, "unknownScheme") { _ = try ConnectionSettings(url: "") },
    BadInput("URL mysql://u@h/db", "unknownScheme") { _ = try ConnectionSettings(url: "mysql://u@h/db") },
    BadInput("URL postgres://h:99999/db", "invalidPort") { _ = try ConnectionSettings(url: "postgres://h:99999/db") },
    BadInput("URL postgres://[::1/db", "invalidHost") { _ = try ConnectionSettings(url: "postgres://[::1/db") },
    BadInput("URL postgres://h/d%00b (NUL)", "invalidPercentEncoding") { _ = try ConnectionSettings(url: "postgres://h/d%00b") },
    BadInput("URL postgres://h/db?connect_timeout=-1", "invalidParameterValue") { _ = try ConnectionSettings(url: "postgres://h/db?connect_timeout=-1") },
    BadInput("URL postgres://h/db?sslmode=on", "invalidParameterValue") { _ = try ConnectionSettings(url: "postgres://h/db?sslmode=on") },
    BadInput("URL postgres://h/db?options=-c%20x", "unknownParameter") { _ = try ConnectionSettings(url: "postgres://h/db?options=-c%20x") },
    BadInput("URL postgres://h1,h2/db", "unsupported") { _ = try ConnectionSettings(url: "postgres://h1,h2/db") },
    // EphemeralPostgres TLS names (nothing is started; bad settings: EphemeralPostgresTests.badSettingsAreRejectedBeforeAnythingStarts).
    BadInput("EphemeralPostgres TLS common name with '/'", "invalidSetting") { _ = try await EphemeralPostgres.start(.init(tls: .init(commonName: "a/CN=b"))) },
]

@Suite("Bad input: every one gets its typed error, nothing is half-written", .serialized)
struct BadInputTests {
    @Test(arguments: pureBadInputs)
    func badInputIsRejectedWithItsTypedError(_ row: BadInput) async throws {
        do {
            try await row.attempt()
            Issue.record("\(row.input) was accepted")
        } catch {
            #expect(codeName(of: error) == row.code, "\(row.input): \(error)")
        }
    }

    @Test(arguments: badNames, nameConsumers)
    func invalidNamesAreRejectedEverywhereANameIsTaken(_ name: String, _ consumer: NameConsumer) {
        do {
            try consumer.use(name)
            Issue.record("\(consumer.name) accepted \(String(reflecting: name))")
        } catch {
            #expect(codeName(of: error) == "invalidArgument", "\(consumer.name)(\(String(reflecting: name))): \(error)")
        }
    }

    @Test(arguments: badWrites)
    func badInputWhereAWriteWasPossibleWritesNothing(_ row: BadWrite) async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            try await db.query("CREATE TABLE written (n int NOT NULL)")
            let queue = try JobQueue(schema: "q")
            try await queue.migrate(on: db.client, logger: db.logger)
            do {
                try await row.attempt(db)
                Issue.record("\(row.input) was accepted")
            } catch {
                #expect(codeName(of: error) == row.code, "\(row.input): \(String(reflecting: error))")
            }
            #expect(try await db.scalar("SELECT count(*)::int FROM written", as: Int.self) == 0, "\(row.input) wrote a row")
            #expect(try await db.scalar("SELECT count(*)::int FROM q.all_jobs", as: Int.self) == 0, "\(row.input) enqueued a job")
            #expect(try await advisoryLocksInDatabase(db) == 0, "\(row.input) left a lock")
        }
    }
}

private let key = LockKey.pair(namespace: 1, id: 1)

private func insert(_ tx: Transaction) async throws {
    try await tx.query("INSERT INTO written VALUES (1)")
}

/// Bad inputs given where a write was possible.
let badWrites: [BadWrite] = [
    BadWrite("TransactionOptions(lockTimeout: 0)", "invalidArgument") { db in
        try await db.client.withCheckedTransaction(options: .init(lockTimeout: .zero), logger: db.logger) { try await insert($0) }
    },
    BadWrite("TransactionOptions(lockTimeout: -1 s)", "invalidArgument") { db in
        try await db.client.withCheckedTransaction(options: .init(lockTimeout: .seconds(-1)), logger: db.logger) { try await insert($0) }
    },
    BadWrite("TransactionOptions(statementTimeout: 30 days)", "invalidArgument") { db in
        try await db.client.withCheckedTransaction(options: .init(statementTimeout: .seconds(30 * 86_400)), logger: db.logger) { try await insert($0) }
    },
    BadWrite("withAdvisoryLock(wait: .timeout(-5 ms))", "invalidArgument") { db in
        try await db.client.withAdvisoryLock(key, wait: .timeout(.milliseconds(-5)), logger: db.logger) { try await insert($0) }
    },
    BadWrite("withAdvisoryLock(wait: .timeout(0))", "invalidArgument") { db in
        try await db.client.withAdvisoryLock(key, wait: .timeout(.zero), logger: db.logger) { try await insert($0) }
    },
    BadWrite("withAdvisoryLock(wait: .timeout(Int64.max / 2 s))", "invalidArgument") { db in
        try await db.client.withAdvisoryLock(key, wait: .timeout(.seconds(Int64.max / 2)), logger: db.logger) { try await insert($0) }
    },
    BadWrite("withSessionAdvisoryLock(wait: .timeout(0))", "invalidArgument") { db in
        try await db.client.withSessionAdvisoryLock(key, wait: .timeout(.zero), logger: db.logger) {
            try await db.client.withCheckedTransaction(logger: db.logger) { try await insert($0) }
        }
    },
    BadWrite("withSessionAdvisoryLock(heartbeat: 0)", "invalidArgument") { db in
        try await db.client.withSessionAdvisoryLock(key, heartbeat: .zero, logger: db.logger) {
            try await db.client.withCheckedTransaction(logger: db.logger) { try await insert($0) }
        }
    },
    BadWrite("tx.advisoryLock(wait: .timeout(-1 s)) after a write in the transaction", "invalidArgument") { db in
        try await db.client.withCheckedTransaction(logger: db.logger) { tx in
            try await insert(tx)
            _ = try await tx.advisoryLock(key, wait: .timeout(.seconds(-1)))
        }
    },
    BadWrite("tx.advisoryLocks([]) after a write in the transaction", "invalidArgument") { db in
        try await db.client.withCheckedTransaction(logger: db.logger) { tx in
            try await insert(tx)
            try await tx.advisoryLocks([])
        }
    },
    BadWrite("tx.advisoryLocks(10 001 keys) after a write in the transaction", "invalidArgument") { db in
        try await db.client.withCheckedTransaction(logger: db.logger) { tx in
            try await insert(tx)
            try await tx.advisoryLocks((0...Int64(Transaction.maximumKeysPerCall)).map { LockRequest(.int64($0)) })
        }
    },
    BadWrite("withAdvisoryLocks([])", "invalidArgument") { db in
        try await db.client.withAdvisoryLocks([], logger: db.logger) { try await insert($0) }
    },
    BadWrite(#"GaplessCounter.next(scope: "") after a write in the transaction"#, "invalidArgument") { db in
        let counter = try GaplessCounter(table: "numbers")
        try await counter.migrate(on: db.client, logger: db.logger)
        try await db.client.withCheckedTransaction(logger: db.logger) { tx in
            try await insert(tx)
            _ = try await counter.next(scope: "", in: tx)
        }
    },
    BadWrite("queue.enqueue([])", "invalidArgument") { db in
        try await JobQueue(schema: "q").enqueue([], on: db.client, logger: db.logger)
    },
    BadWrite("queue.enqueue(50 001 jobs)", "invalidArgument") { db in
        let job = try NewJob(kind: "k")
        try await JobQueue(schema: "q").enqueue(Array(repeating: job, count: JobQueue.maximumBatchSize + 1), on: db.client, logger: db.logger)
    },
    BadWrite("queue.enqueue(a batch with one payload that is not JSON)", "server") { db in
        try await JobQueue(schema: "q").enqueue([try NewJob(kind: "k"), try NewJob(kind: "k", payloadJSON: "{not json")], on: db.client, logger: db.logger)
    },
    BadWrite("queue.enqueue(in: tx) of a payload that is not JSON after a write in the transaction", "transactionAborted") { db in
        try await db.client.withCheckedTransaction(logger: db.logger) { tx in
            try await insert(tx)
            // The body swallows the error: the transaction still must not commit.
            _ = try? await JobQueue(schema: "q").enqueue([try NewJob(kind: "k", payloadJSON: "[1,")], in: tx)
        }
    },
    BadWrite("queue.claim(limit: 0)", "invalidArgument") { db in
        _ = try await JobQueue(schema: "q").claim(from: "default", limit: 0, lease: .seconds(1), owner: "t", on: db.client, logger: db.logger)
    },
    BadWrite("queue.claim(lease: -1 s)", "invalidArgument") { db in
        _ = try await JobQueue(schema: "q").claim(from: "default", limit: 1, lease: .seconds(-1), owner: "t", on: db.client, logger: db.logger)
    },
    BadWrite("try QueueWorker(concurrency: 0).run()", "invalidArgument") { db in
        var handlers = JobHandlers()
        handlers.register("k") { (_: [String: String], _) in }
        try await QueueWorker(queue: try JobQueue(schema: "q"), client: db.client, handlers: handlers, configuration: .init(concurrency: 0), logger: db.logger).run()
    },
    BadWrite("try QueueWorker(lease: 0).run()", "invalidArgument") { db in
        var handlers = JobHandlers()
        handlers.register("k") { (_: [String: String], _) in }
        try await QueueWorker(queue: try JobQueue(schema: "q"), client: db.client, handlers: handlers, configuration: .init(lease: .zero), logger: db.logger).run()
    },
]
