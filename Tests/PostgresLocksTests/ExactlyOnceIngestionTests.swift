import Foundation
import Logging
@testable import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Testing

/// An event as a producer would send it: a business key and something to record.
private struct Event: Sendable, Equatable {
    var key: String
    var producer: Int
}

/// The key table and a side-effect table the handler writes to, in the same transaction.
private func makeTables(_ db: TestContext, keyType: String = "text") async throws -> ExactlyOnceIngestion<String> {
    let ingestion = try ExactlyOnceIngestion<String>(table: QualifiedName("ingested"))
    try await ingestion.migrate(on: db.client, logger: db.logger)
    try await db.query("CREATE TABLE side_effects (key text NOT NULL, producer int NOT NULL)")
    return ingestion
}

/// The handler's side effect: one row per new event, written in the ingesting transaction.
private func recordSideEffects(_ tx: Transaction, _ events: [Event]) async throws {
    try await tx.query("INSERT INTO side_effects (key, producer) SELECT * FROM unnest(\(events.map(\.key))::text[], \(events.map { Int32($0.producer) })::int4[])")
}

/// Sessions of this test's database waiting for another transaction (a producer waiting on a
/// key that another producer's open transaction inserted). `transactionid` locks carry no
/// database, so the sessions are matched through `pg_stat_activity`.
private func transactionWaiters(_ db: TestContext) async throws -> Int {
    try await db.scalar("""
        SELECT count(*)::int FROM pg_locks
        WHERE locktype = 'transactionid' AND NOT granted
          AND pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database())
        """, as: Int.self)
}

/// Lets a fixed number of tasks start each round together: the last to arrive releases all.
/// Cancelling a waiting task breaks the barrier, so a failed producer cannot strand the others.
private actor Barrier {
    private let parties: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []
    private var broken = false

    init(parties: Int) { self.parties = parties }

    func arrive() async throws {
        if broken { throw CancellationError() }
        if waiting.count + 1 == parties {
            release()
            return
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { waiting.append($0) }
        } onCancel: {
            Task { await self.breakBarrier() }
        }
        if broken { throw CancellationError() }
    }

    private func breakBarrier() {
        broken = true
        release()
    }

    private func release() {
        let released = waiting
        waiting = []
        for continuation in released { continuation.resume() }
    }
}

@Suite("Exactly-once ingestion")
struct ExactlyOnceIngestionTests {
    // MARK: - The required concurrency test

    @Test func eightProducersWithThirtyPercentDuplicatesAcrossProducersStoreEachKeyOnceAndHandleItOnce() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let ingestion = try await makeTables(db)
            let producers = 8, batches = 12, batchSize = 200
            // Producer p's batch b: 70% keys of its own, 30% keys that other producers send in
            // their batch b too, so duplicates arrive at the same moment from several producers.
            var generator = SplitMix64(state: 2024)
            var plan: [[[Event]]] = []
            var distinct = Set<String>()
            for producer in 0..<producers {
                var producerBatches: [[Event]] = []
                for batch in 0..<batches {
                    var events: [Event] = []
                    for index in 0..<batchSize {
                        let key: String
                        if index < batchSize * 7 / 10 {
                            key = "order-\(producer)-\(batch)-\(index)"
                        } else {
                            // Another producer's own key of the same batch index (or a shared one).
                            let other = Int(generator.next() % UInt64(producers))
                            let slot = Int(generator.next() % UInt64(batchSize * 7 / 10))
                            key = generator.next() % 4 == 0 ? "shared-\(batch)-\(slot % 20)-é" : "order-\(other)-\(batch)-\(slot)"
                        }
                        events.append(Event(key: key, producer: producer))
                        distinct.insert(key)
                    }
                    producerBatches.append(events.shuffled(using: &generator))
                }
                plan.append(producerBatches)
            }
            let totalEvents = producers * batches * batchSize
            let duplicateShare = Double(totalEvents - distinct.count) / Double(totalEvents)
            #expect(duplicateShare >= 0.25, "the plan must really contain duplicates: \(duplicateShare)")

            let reports = try await withThrowingTaskGroup(of: [IngestionReport<String>].self) { group in
                for producer in 0..<producers {
                    let batches = plan[producer]
                    group.addTask {
                        var reports: [IngestionReport<String>] = []
                        for events in batches {
                            reports.append(try await ingestion.ingest(events, keyedBy: \.key, on: db.client, logger: db.logger, handler: recordSideEffects))
                        }
                        return reports
                    }
                }
                var all: [IngestionReport<String>] = []
                for try await partial in group { all += partial }
                return all
            }

            let stored = try await db.scalar("SELECT count(*)::int FROM ingested", as: Int.self)
            let storedDistinct = try await db.scalar("SELECT count(DISTINCT key)::int FROM ingested", as: Int.self)
            let sideEffects = try await db.scalar("SELECT count(*)::int FROM side_effects", as: Int.self)
            let sideEffectKeys = try await db.scalar("SELECT count(DISTINCT key)::int FROM side_effects", as: Int.self)
            let expectedPresent = try await db.scalar("SELECT count(*)::int FROM ingested WHERE key = ANY(\(Array(distinct)))", as: Int.self)
            #expect(stored == distinct.count)
            #expect(storedDistinct == distinct.count)
            #expect(expectedPresent == distinct.count)
            #expect(sideEffects == distinct.count, "the handler's side effect ran once per distinct key")
            #expect(sideEffectKeys == distinct.count)
            #expect(reports.map(\.newEventCount).reduce(0, +) == distinct.count)
            #expect(reports.map(\.eventCount).reduce(0, +) == totalEvents)
            #expect(reports.map(\.duplicateEventCount).reduce(0, +) == totalEvents - distinct.count)
            // Every new key a producer reported carries that producer's side effect.
            let mismatched = try await db.scalar("""
                SELECT count(*)::int FROM ingested i LEFT JOIN side_effects s USING (key) WHERE s.key IS NULL
                """, as: Int.self)
            #expect(mismatched == 0)
        }
    }

    // MARK: - Rollback and waits

    @Test func handlerFailureStoresNeitherKeyNorSideEffectAndALaterRetryIngestsIt() async throws {
        struct HandlerFailed: Error {}
        try await TestDatabase.withDatabase { db in
            let ingestion = try await makeTables(db)
            let events = [Event(key: "a", producer: 1), Event(key: "b", producer: 1)]
            await #expect(throws: HandlerFailed.self) {
                try await ingestion.ingest(events, keyedBy: \.key, on: db.client, logger: db.logger) { tx, new in
                    try await recordSideEffects(tx, new)
                    throw HandlerFailed()
                }
            }
            #expect(try await db.scalar("SELECT count(*)::int FROM ingested", as: Int.self) == 0)
            #expect(try await db.scalar("SELECT count(*)::int FROM side_effects", as: Int.self) == 0)

            let report = try await ingestion.ingest(events, keyedBy: \.key, on: db.client, logger: db.logger, handler: recordSideEffects)
            #expect(report.newKeys == ["a", "b"])
            let again = try await ingestion.ingest(events, keyedBy: \.key, on: db.client, logger: db.logger, handler: recordSideEffects)
            #expect(again.newKeys.isEmpty && again.duplicateEventCount == 2)
            #expect(try await db.scalar("SELECT count(*)::int FROM ingested", as: Int.self) == 2)
            #expect(try await db.scalar("SELECT count(*)::int FROM side_effects", as: Int.self) == 2)
        }
    }

    @Test func aProducerWaitingOnAnotherKeysItWhenTheOtherRollsBackAndSkipsItWhenTheOtherCommits() async throws {
        struct FirstGivesUp: Error {}
        try await TestDatabase.withDatabase { db in
            let ingestion = try await makeTables(db)
            for firstCommits in [false, true] {
                let key = "contended-\(firstCommits)"
                let (release, releaser) = AsyncStream<Void>.makeStream()
                let handled = LockedBox<[Int]>([])
                // Producer 1 stores the key and holds its transaction open in the handler.
                let first = Task {
                    try await ingestion.ingest([Event(key: key, producer: 1)], keyedBy: \.key, on: db.client, logger: db.logger) { tx, new in
                        try await recordSideEffects(tx, new)
                        handled.withLock { $0.append(1) }
                        for await _ in release { break }
                        if !firstCommits { throw FirstGivesUp() }
                    }
                }
                try await waitUntil("producer 1 holds the key") { handled.value == [1] }
                // Producer 2 sends the same key: its insert waits on producer 1's transaction.
                let second = Task {
                    try await ingestion.ingest([Event(key: key, producer: 2), Event(key: "other-\(firstCommits)", producer: 2)], keyedBy: \.key, on: db.client, logger: db.logger) { tx, new in
                        try await recordSideEffects(tx, new)
                        handled.withLock { $0.append(2) }
                    }
                }
                try await waitUntil("producer 2 waits for producer 1's transaction") { try await transactionWaiters(db) == 1 }
                releaser.yield()
                let firstResult = await first.result
                let secondReport = try await second.value
                if firstCommits {
                    #expect(try firstResult.get().newKeys == [key])
                    #expect(secondReport.newKeys == ["other-\(firstCommits)"])
                } else {
                    #expect(throws: FirstGivesUp.self) { try firstResult.get() }
                    #expect(secondReport.newKeys == [key, "other-\(firstCommits)"])
                }
                let owners = try await db.query("SELECT producer FROM side_effects WHERE key = \(key)").map { try $0.decode(Int.self) }
                #expect(owners == [firstCommits ? 1 : 2], "exactly one side effect, by whoever committed the key")
            }
        }
    }

    @Test func aProducerWhoseConnectionDiesMidBatchResendsWithoutLossOrDuplicate() async throws {
        try await TestDatabase.withDatabase { db in
            let ingestion = try await makeTables(db)
            let events = (0..<50).map { Event(key: "k\($0)", producer: 1) }
            let connection = try await db.makeConnection()
            let error = await #expect(throws: PostgresLocksError.self) {
                try await ingestion.ingest(events, keyedBy: \.key, on: connection, logger: db.logger) { tx, new in
                    try await recordSideEffects(tx, new)
                    // The server ends this session while the transaction is open.
                    let pid = try await tx.query("SELECT pg_backend_pid()").rows[0].decode(Int32.self)
                    try await db.query("SELECT pg_terminate_backend(\(pid))")
                    try await tx.query("SELECT 1")
                }
            }
            #expect(error?.code == .connectionLost)
            try? await connection.close()
            #expect(try await db.scalar("SELECT count(*)::int FROM ingested", as: Int.self) == 0)

            let report = try await ingestion.ingest(events + events, keyedBy: \.key, on: db.client, logger: db.logger, handler: recordSideEffects)
            #expect(report.newEventCount == 50)
            #expect(try await db.scalar("SELECT count(*)::int FROM ingested", as: Int.self) == 50)
            #expect(try await db.scalar("SELECT count(*)::int FROM side_effects", as: Int.self) == 50)
        }
    }

    @Test func cancellingAProducerThatWaitsForAnotherEndsTheServerSideWait() async throws {
        try await TestDatabase.withDatabase { db in
            let ingestion = try await makeTables(db)
            let (release, releaser) = AsyncStream<Void>.makeStream()
            let holding = LockedBox(false)
            let first = Task {
                try await ingestion.ingest([Event(key: "k", producer: 1)], keyedBy: \.key, on: db.client, logger: db.logger) { tx, new in
                    try await recordSideEffects(tx, new)
                    holding.withLock { $0 = true }
                    for await _ in release { break }
                }
            }
            try await waitUntil("producer 1 holds the key") { holding.value }
            let second = Task {
                try await ingestion.ingest([Event(key: "k", producer: 2)], keyedBy: \.key, on: db.client, logger: db.logger, handler: recordSideEffects)
            }
            try await waitUntil("producer 2 waits") { try await transactionWaiters(db) == 1 }
            second.cancel()
            let outcome = await second.result
            #expect(throws: CancellationError.self) { try outcome.get() }
            try await waitUntil("the server-side wait has ended") { try await transactionWaiters(db) == 0 }
            releaser.yield()
            #expect(try await first.value.newKeys == ["k"])
            #expect(try await db.scalar("SELECT count(*)::int FROM side_effects", as: Int.self) == 1)
        }
    }

    // MARK: - Batches

    @Test func duplicatesWithinOneBatchReachTheHandlerOnceInBatchOrder() async throws {
        try await TestDatabase.withDatabase { db in
            let ingestion = try await makeTables(db)
            // "é" precomposed and decomposed are equal for Swift's String, different for text.
            let precomposed = "caf\u{E9}", decomposed = "cafe\u{301}"
            #expect(precomposed == decomposed)
            let events = ["b", "a", "b", precomposed, "c", "a", decomposed, "b"].enumerated().map { Event(key: $1, producer: $0) }
            let received = LockedBox<[Event]>([])
            let report = try await ingestion.ingest(events, keyedBy: \.key, on: db.client, logger: db.logger) { tx, new in
                received.withLock { $0 += new }
                try await recordSideEffects(tx, new)
            }
            // First occurrence of each key, in the order the batch had them.
            #expect(received.value.map(\.producer) == [0, 1, 3, 4, 6])
            #expect(report.eventCount == 8)
            #expect(report.distinctKeyCount == 5)
            #expect(report.newEventCount == 5)
            #expect(report.duplicateEventCount == 3)
            // Ascending byte order: "a" < "b" < "c" < "cafe\u{301}" < "caf\u{E9}".
            #expect(report.newKeys.map { Array($0.utf8) } == ["a", "b", "c", decomposed, precomposed].map { Array($0.utf8) })
            #expect(try await db.scalar("SELECT count(*)::int FROM ingested", as: Int.self) == 5)
        }
    }

    @Test func uuidKeysAreStoredOnceAcrossBatches() async throws {
        try await TestDatabase.withDatabase { db in
            let ingestion = try ExactlyOnceIngestion<UUID>(table: QualifiedName(schema: "public", "ingested_uuids"))
            try await ingestion.migrate(on: db.client, logger: db.logger)
            let keys = (0..<300).map { _ in UUID() }
            let first = try await ingestion.ingest(keys: Array(keys[0..<200]), on: db.client, logger: db.logger)
            let second = try await ingestion.ingest(keys: Array(keys[100..<300]) + Array(keys[100..<300]), on: db.client, logger: db.logger)
            #expect(first.newEventCount == 200)
            #expect(second.newEventCount == 100 && second.duplicateEventCount == 300)
            #expect(Set(first.newKeys + second.newKeys) == Set(keys))
            #expect(try await db.scalar("SELECT count(*)::int FROM ingested_uuids", as: Int.self) == 300)
        }
    }

    @Test func producersSendingOverlappingBatchesInOppositeOrdersNeverDeadlock() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 10) { db in
            let ingestion = try await makeTables(db)
            let producers = 6, rounds = 150, keysPerRound = 60
            // No retries: a deadlock would be thrown, not hidden.
            let noRetry = RetryPolicy(maximumAttempts: 1)
            var connections: [PostgresConnection] = []
            for _ in 0..<producers { connections.append(try await db.makeConnection()) }
            // Every round starts together, so all producers insert the same keys at once.
            let barrier = Barrier(parties: producers)
            let outcome: Result<Void, any Error>
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (producer, connection) in connections.enumerated() {
                        group.addTask {
                            try await withTaskExecutorPreference(EventLoopTaskExecutor(connection.eventLoop)) {
                                for round in 0..<rounds {
                                    try await barrier.arrive()
                                    // The same fresh keys for every producer this round, half of them
                                    // in reverse order, each also with keys of the next round.
                                    var keys = (0..<keysPerRound).map { "r\(round)-k\($0)" } + (0..<5).map { "r\(round + 1)-k\($0 * 7)" }
                                    if producer % 2 == 1 { keys.reverse() }
                                    let events = keys.map { Event(key: $0, producer: producer) }
                                    try await ingestion.ingest(events, keyedBy: \.key, on: connection, retry: noRetry, logger: db.logger) { tx, new in
                                        try await recordSideEffects(tx, new)
                                    }
                                }
                            }
                        }
                    }
                    // The first failure ends the wait (waitForAll would wait for the producers it strands).
                    for try await _ in group {}
                }
                outcome = .success(())
            } catch {
                outcome = .failure(error)
            }
            for connection in connections { try await connection.close() }
            try outcome.get()
            let expected = rounds * keysPerRound + 5
            #expect(try await db.scalar("SELECT count(*)::int FROM ingested", as: Int.self) == expected)
            #expect(try await db.scalar("SELECT count(*)::int FROM side_effects", as: Int.self) == expected)
            #expect(try await db.scalar("SELECT deadlocks::int FROM pg_stat_database WHERE datname = current_database()", as: Int.self) == 0)
        }
    }

    @Test func unsortedInsertsOfTheSameKeysDeadlockWhichIsWhyKeysAreSorted() async throws {
        // The hazard the sorted insert removes, shown with plain SQL on two connections:
        // A inserts x then y, B inserts y then x.
        try await TestDatabase.withDatabase { db in
            try await db.query("CREATE TABLE keys (key text PRIMARY KEY)")
            let a = try await db.makeConnection(), b = try await db.makeConnection()
            @Sendable func run(_ connection: PostgresConnection, _ sql: PostgresQuery) async throws {
                do { _ = try await connection.query(sql, logger: db.logger).collect() } catch { throw PostgresLocksError.wrap(error) }
            }
            try await run(a, "BEGIN")
            try await run(a, "INSERT INTO keys VALUES ('x') ON CONFLICT DO NOTHING")
            try await run(b, "BEGIN")
            try await run(b, "INSERT INTO keys VALUES ('y') ON CONFLICT DO NOTHING")
            let second = Task { try await run(a, "INSERT INTO keys VALUES ('y') ON CONFLICT DO NOTHING") }
            try await waitUntil("A waits for B's key") { try await transactionWaiters(db) == 1 }
            let outcomeB: Result<Void, any Error>
            do { outcomeB = .success(try await run(b, "INSERT INTO keys VALUES ('x') ON CONFLICT DO NOTHING")) } catch { outcomeB = .failure(error) }
            let outcomeA = await second.result
            let codes = [outcomeA, outcomeB].map { outcome -> PostgresLocksError.Code? in
                if case .failure(let error) = outcome { return (error as? PostgresLocksError)?.code }
                return nil
            }
            #expect(codes.filter { $0 == .deadlock }.count == 1, "one of the two is aborted as a deadlock: \(codes)")
            try await run(a, "ROLLBACK")
            try await run(b, "ROLLBACK")
            try await a.close()
            try await b.close()
        }
    }

    @Test func largeBatchIsSplitIntoTransactionsOfAtMostTheLimit() async throws {
        try await TestDatabase.withDatabase { db in
            let base = try await makeTables(db)
            let ingestion = try ExactlyOnceIngestion<String>(table: base.table, maximumKeysPerTransaction: 100)
            try await ingestion.ingest(keys: (0..<50).map { String(format: "k%05d", $0 * 3) }, on: db.client, logger: db.logger)
            let events = (0..<1_050).map { Event(key: String(format: "k%05d", $0), producer: 0) }
            let transactions = LockedBox<[Int64: Int]>([:])
            let report = try await ingestion.ingest(events, keyedBy: \.key, on: db.client, logger: db.logger) { tx, new in
                let id = try await tx.query("SELECT txid_current()").rows[0].decode(Int64.self)
                transactions.withLock { $0[id, default: 0] += new.count }
                try await recordSideEffects(tx, new)
            }
            #expect(report.committedTransactions == 11)
            #expect(report.distinctKeyCount == 1_050)
            #expect(report.newEventCount == 1_050 - 50)
            #expect(transactions.value.count == 11, "one transaction per run of at most 100 keys")
            #expect(transactions.value.values.allSatisfy { $0 <= 100 })
            #expect(try await db.scalar("SELECT count(*)::int FROM side_effects", as: Int.self) == 1_000)
        }
    }

    @Test func interruptedSplitSaysWhichKeysCommittedAndResendingCompletesIt() async throws {
        struct ThirdFails: Error {}
        try await TestDatabase.withDatabase { db in
            let base = try await makeTables(db)
            let ingestion = try ExactlyOnceIngestion<String>(table: base.table, maximumKeysPerTransaction: 10)
            let events = (0..<45).map { Event(key: String(format: "e%03d", 44 - $0), producer: 0) }
            let calls = LockedBox(0)
            let error = await #expect(throws: IngestionInterrupted<String>.self) {
                try await ingestion.ingest(events, keyedBy: \.key, on: db.client, logger: db.logger) { tx, new in
                    let call = calls.withLock { $0 += 1; return $0 }
                    if call == 3 { throw ThirdFails() }
                    try await recordSideEffects(tx, new)
                }
            }
            #expect(error?.committed.committedTransactions == 2)
            #expect(error?.committed.newKeys == (0..<20).map { String(format: "e%03d", $0) })
            #expect(error?.committed.eventCount == 20)
            #expect(error?.uncommittedKeys == (20..<45).map { String(format: "e%03d", $0) })
            #expect(error?.underlying is ThirdFails)
            #expect(try await db.scalar("SELECT count(*)::int FROM ingested", as: Int.self) == 20)

            let resent = try await ingestion.ingest(events, keyedBy: \.key, on: db.client, logger: db.logger, handler: recordSideEffects)
            #expect(resent.newKeys == (20..<45).map { String(format: "e%03d", $0) })
            #expect(try await db.scalar("SELECT count(*)::int FROM side_effects", as: Int.self) == 45)
        }
    }

    @Test func aFailedFirstTransactionThrowsItsOwnError() async throws {
        struct Fails: Error {}
        try await TestDatabase.withDatabase { db in
            let base = try await makeTables(db)
            let ingestion = try ExactlyOnceIngestion<String>(table: base.table, maximumKeysPerTransaction: 10)
            await #expect(throws: Fails.self) {
                try await ingestion.ingest(keys: (0..<30).map { "k\($0)" }, on: db.client, logger: db.logger) { _, _ in throw Fails() }
            }
            #expect(try await db.scalar("SELECT count(*)::int FROM ingested", as: Int.self) == 0)
        }
    }

    @Test func aTransactionHoldsTheSameFewLocksWhateverItsKeyCount() async throws {
        // Why no advisory lock per key is needed, nor a split to fit the lock table: the insert
        // takes no lock-table entry per key.
        try await TestDatabase.withDatabase { db in
            let base = try await makeTables(db)
            let ingestion = try ExactlyOnceIngestion<String>(table: base.table, maximumKeysPerTransaction: 20_000)
            var held: [Int] = []
            for count in [10, 20_000] {
                let keys = (0..<count).map { "n\(count)-\($0)" }
                let locks = LockedBox(0)
                try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                    try await ingestion.ingest(keys: keys, in: tx) { tx, new in
                        #expect(new.count == count)
                        let n = try await tx.query("SELECT count(*)::int FROM pg_locks WHERE pid = pg_backend_pid()").rows[0].decode(Int.self)
                        locks.withLock { $0 = n }
                    }
                }
                held.append(locks.value)
            }
            #expect(held[0] == held[1], "locks held: \(held)")
            #expect(held[1] < 10, "locks held: \(held)")
        }
    }

    // MARK: - Input and tables

    @Test func badInputIsRejectedBeforeAnythingIsWritten() async throws {
        try await TestDatabase.withDatabase { db in
            let base = try await makeTables(db)
            let small = try ExactlyOnceIngestion<String>(table: base.table, maximumKeysPerTransaction: 3)
            let tooLong = String(repeating: "x", count: ExactlyOnceIngestion<String>.maximumKeyBytes + 1)
            for keys in [["ok", ""], ["ok", tooLong], ["ok", "nul\u{0}"]] {
                let error = await #expect(throws: PostgresLocksError.self) {
                    try await base.ingest(keys: keys, on: db.client, logger: db.logger)
                }
                #expect(error?.code == .invalidArgument)
                #expect(error?.message.contains("event 1") == true)
            }
            let error = await #expect(throws: PostgresLocksError.self) {
                try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                    try await small.ingest(keys: ["a", "b", "c", "d", "a"], in: tx)
                }
            }
            #expect(error?.code == .invalidArgument)
            // Three distinct keys fit, duplicates do not count.
            let fits = try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                try await small.ingest(keys: ["c", "b", "c", "a"], in: tx)
            }
            #expect(fits.newEventCount == 3)
            #expect(try await db.scalar("SELECT count(*)::int FROM ingested", as: Int.self) == 3)
            #expect(throws: PostgresLocksError.self) { try ExactlyOnceIngestion<String>(table: base.table, maximumKeysPerTransaction: 0) }
            // An empty batch sends nothing and reports nothing.
            let empty = try await base.ingest(keys: [], on: db.client, logger: db.logger)
            #expect(empty.eventCount == 0 && empty.committedTransactions == 0)
        }
    }

    @Test func tablesAreCreatedIdempotentlyAndUnusableTablesAreRejected() async throws {
        try await TestDatabase.withDatabase { db in
            let ingestion = try ExactlyOnceIngestion<String>(table: QualifiedName("events_seen"), keyColumn: SQLIdentifier("event_id"))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        try await ingestion.migrate(on: db.client, logger: db.logger)
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await ingestion.ingest(keys: ["x"], on: db.client, logger: db.logger).newKeys == ["x"])

            try await db.query("CREATE TABLE no_unique (key text)")
            try await db.query("CREATE TABLE wrong_type (key int PRIMARY KEY)")
            try await db.query("CREATE TABLE needs_payload (key text PRIMARY KEY, payload jsonb NOT NULL)")
            try await db.query("CREATE TABLE own_events (key text PRIMARY KEY, payload jsonb, received timestamptz NOT NULL DEFAULT now())")
            for (name, problem) in [("no_unique", "unique index"), ("wrong_type", "integer"), ("needs_payload", "payload"), ("missing", "does not exist")] {
                let candidate = try ExactlyOnceIngestion<String>(table: QualifiedName(name))
                let error = await #expect(throws: PostgresLocksError.self) {
                    try await db.client.withCheckedTransaction(logger: db.logger) { tx in try await candidate.verifyTable(in: tx) }
                }
                #expect(error?.code == .invalidArgument)
                #expect(error?.message.contains(problem) == true, "\(name): \(error?.message ?? "")")
            }
            let own = try ExactlyOnceIngestion<String>(table: QualifiedName("own_events"))
            try await db.client.withCheckedTransaction(logger: db.logger) { tx in try await own.verifyTable(in: tx) }
            #expect(try await own.ingest(keys: ["y", "y"], on: db.client, logger: db.logger).newKeys == ["y"])
        }
    }

    // MARK: - Batch preparation (no server)

    @Test func batchesAreDeduplicatedSortedByBytesAndSplitInOrder() throws {
        let batch = try IngestionBatch(eventKeys: ["b", "a", "b", "ä", "A", "a"], maximumKeyBytes: 16)
        #expect(batch.keys == ["A", "a", "b", "ä"])
        #expect(batch.firstEventIndex == [4, 1, 0, 3])
        #expect(batch.occurrences == [1, 2, 2, 1])
        #expect(batch.chunks(maximum: 3) == [0..<3, 3..<4])
        #expect(batch.eventCount(in: 0..<3) == 5)
        #expect(batch.insertedPositions(in: 1..<4, returned: ["ä", "a"]) == [1, 3])
        #expect(batch.insertedPositions(in: 0..<2, returned: []) == [])

        let uuids = try IngestionBatch(eventKeys: [UUID(uuidString: "FFFFFFFF-0000-0000-0000-000000000000")!, UUID(uuidString: "00000000-0000-0000-0000-0000000000FF")!], maximumKeyBytes: 16)
        #expect(uuids.keys.first?.uuidString == "00000000-0000-0000-0000-0000000000FF")
        #expect(throws: PostgresLocksError.self) { try IngestionBatch(eventKeys: ["seventeen bytes!!"], maximumKeyBytes: 16) }

        // The specialized UUID sort agrees with the byte comparison, duplicates included.
        var generator = SplitMix64(state: 7)
        var randomUUIDs = (0..<500).map { _ in UUID(uuid: withUnsafeBytes(of: (generator.next(), generator.next())) { b in (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]) }) }
        randomUUIDs += randomUUIDs.prefix(50)
        let bySort = UUID.ingestionOrder(randomUUIDs)
        let byCompare = randomUUIDs.indices.sorted { a, b in
            let c = UUID.ingestionCompare(randomUUIDs[a], randomUUIDs[b])
            return c != 0 ? c < 0 : a < b
        }
        #expect(bySort == byCompare)
    }
}
