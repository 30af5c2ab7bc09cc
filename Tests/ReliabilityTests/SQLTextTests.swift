import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import PostgresQueue
import Testing

/// The server's statement log, split into entries (a line with the log prefix starts one; tab-
/// indented lines continue it).
struct StatementLog {
    struct Entry {
        var kind: String
        var text: String
    }

    let entries: [Entry]

    init(file: String) throws {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        var entries: [Entry] = []
        let kinds = ["LOG:  ", "DETAIL:  ", "STATEMENT:  ", "ERROR:  ", "HINT:  ", "CONTEXT:  ", "WARNING:  ", "FATAL:  "]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if let kind = kinds.first(where: { line.contains("] " + $0) }), let range = line.range(of: "] " + kind) {
                entries.append(Entry(kind: kind.trimmingCharacters(in: .whitespaces), text: String(line[range.upperBound...])))
            } else if !entries.isEmpty {
                entries[entries.count - 1].text += "\n" + line
            }
        }
        self.entries = entries
    }

    /// Entries that are SQL text the server received (not the values bound to it).
    var statements: [Entry] {
        entries.filter { ($0.kind == "LOG:" && ($0.text.hasPrefix("execute ") || $0.text.hasPrefix("statement: "))) || $0.kind == "STATEMENT:" }
    }

    /// Entries listing bound parameter values.
    var parameters: [Entry] {
        entries.filter { $0.kind == "DETAIL:" && $0.text.hasPrefix("parameters: ") }
    }
}

@Suite("Security: user values never reach SQL text")
struct SQLTextTests {
    @Test func hostileValuesAreBoundAndHostileIdentifiersNeverSent() async throws {
        let security = try await SecurityServer.shared()
        let marker = "Mk\(UInt32.random(in: 0...UInt32.max))"
        let hostile = "\(marker)'); DROP TABLE numbers; -- \" ; $1 \\"
        let identifierMarker = "Id\(UInt32.random(in: 0...UInt32.max))"
        let logger = TestDatabase.logger
        try await withClient(try ConnectionSettings(url: security.server.url())) { client in
            // Values: scopes, job kinds, queues, payloads, unique keys, owners, error texts,
            // election names and instance ids, key names.
            for strategy in GaplessCounter.Strategy.allCases {
                let counter = try GaplessCounter(table: "Sec_Numbers_\(strategy.rawValue.replacingOccurrences(of: "-", with: "_"))", strategy: strategy)
                try await counter.migrate(on: client, logger: logger)
                let numbers = try await client.withCheckedTransaction(logger: logger) { tx in
                    [try await counter.next(scope: hostile, in: tx), try await counter.next(scope: hostile, in: tx)]
                }
                #expect(numbers == [1, 2])
            }
            try await client.withAdvisoryLock(.hashed(hostile), logger: logger) { _ in }
            try await client.withAdvisoryLocks([LockRequest(try LockKey(text: hostile)), LockRequest(.named(hostile + "2"))], logger: logger) { _ in }
            let queue = try JobQueue(schema: "Sec_Queue")
            try await queue.migrate(on: client, logger: logger)
            let job = try NewJob(kind: hostile, payload: ["note": hostile], queue: hostile, uniqueKey: hostile)
            try await queue.enqueue(job, on: client, logger: logger)
            let claimed = try await queue.claim(from: hostile, kinds: [hostile], limit: 1, lease: .seconds(30), owner: hostile, on: client, logger: logger)
            #expect(claimed.count == 1)
            _ = try await queue.fail(claimed[0].lease, error: hostile, retryAfter: .zero, discard: true, on: client, logger: logger)

            var configuration = LeaderElection.Configuration(name: hostile, connection: try ConnectionSettings(url: security.server.url()), instanceID: hostile)
            configuration.heartbeatInterval = .milliseconds(200)
            let election = try LeaderElection(configuration: configuration, logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await election.run() }
                try await waitUntil("the hostile-named election has a leader") { election.isLeader }
                group.cancelAll()
            }

            // Identifiers: a hostile name is refused before anything is sent.
            let attempts: [() throws -> Void] = [
                { _ = try GaplessCounter(table: "\(identifierMarker)\"; DROP TABLE x; --") },
                { _ = try GaplessCounter(table: "t", schema: "\(identifierMarker) x") },
                { _ = try JobQueue(schema: "\(identifierMarker);") },
                { _ = try RowLock(of: ["\(identifierMarker)\""]) },
                { _ = try LeaderElection.Configuration(name: "e", connection: ConnectionSettings(host: .tcp("h"), user: "u"), termsTable: "\(identifierMarker)'") },
            ]
            for attempt in attempts {
                #expect(throws: PostgresLocksError.self) { try attempt() }
            }
        }

        let log = try StatementLog(file: security.server.logFile)
        // The values reached the server, as parameters only.
        #expect(log.parameters.contains { $0.text.contains(marker) }, "the hostile values were sent as parameters")
        let leaking = log.statements.filter { $0.text.contains(marker) }
        #expect(leaking.isEmpty, "user values in SQL text: \(leaking.map(\.text))")
        #expect(!log.entries.contains { $0.text.contains(identifierMarker) }, "a refused identifier reached the server")
        // Identifiers are quoted wherever they appear (mixed case would not survive unquoted).
        let mentions = log.statements.filter { $0.text.contains("Sec_Numbers_") || $0.text.contains("Sec_Queue") }
        #expect(!mentions.isEmpty)
        for statement in mentions {
            for name in ["Sec_Numbers_counter_row", "Sec_Numbers_advisory_lock", "Sec_Numbers_unique_index_retry", "Sec_Queue"] {
                let unquoted = statement.text.components(separatedBy: name).count - 1
                let quoted = statement.text.components(separatedBy: "\"\(name)\"").count - 1
                #expect(unquoted == quoted, "\(name) appears unquoted in: \(statement.text)")
            }
        }
    }

    @Test func aValueTheServerRejectsIsWithheldFromTheErrorDescription() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.query("CREATE TABLE cards (number int NOT NULL, mood text)")
            let secret = "4111 1111 1111 1111"
            for statement: PostgresQuery in [
                "INSERT INTO cards (number) VALUES (\(secret)::int)",
                "INSERT INTO cards (number) VALUES (\("99999999999")::int)",
                "SELECT \(secret)::timestamptz",
                "SELECT \(secret)::jsonb",
            ] {
                let error = await #expect(throws: PostgresLocksError.self) {
                    try await db.client.withCheckedTransaction(logger: db.logger) { tx in try await tx.query(statement) }
                }
                let description = try #require(error).description
                #expect(error?.sqlState?.hasPrefix("22") == true, "\(description)")
                #expect(!description.contains(secret) && !description.contains("99999999999"), "\(description)")
                #expect(!"\(error!.message)".contains("1111"), "\(description)")
            }
        }
    }
}
