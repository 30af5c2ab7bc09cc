import InMemoryTracing
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Testing
import Tracing

/// The library's spans: lock waits, checked and retrying transactions, gapless numbers and
/// ingestion batches, each a child of the caller's span, with the attributes the docs list.
@Suite("Tracing")
struct TracingTests {
    /// Runs `body` inside a recorded trace; returns the trace's finished spans (the root last).
    private static func traced(_ body: () async throws -> Void) async throws -> [FinishedInMemorySpan] {
        let tracer = TestTracer.shared
        let trace = tracer.beginTrace("test request")
        defer { tracer.forget(trace) }
        try await ServiceContext.$current.withValue(trace.root.context) {
            try await body()
        }
        trace.root.end()
        return tracer.finishedSpans(of: trace)
    }

    private static func span(_ name: String, in spans: [FinishedInMemorySpan], where matches: (FinishedInMemorySpan) -> Bool = { _ in true }) throws -> FinishedInMemorySpan {
        try #require(spans.first { $0.operationName == name && matches($0) }, "no \(name) span among \(spans.map(\.operationName))")
    }

    @Test func aContendedLockWaitIsASpanUnderItsTransactionWithKeyModeWaitAndOutcome() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.withConnections(1) { connections in
                let holder = connections[0]
                _ = try await holder.query("SELECT pg_advisory_lock(4711)", logger: db.logger).collect()
                let spans = try await Self.traced {
                    async let waited: Void = db.client.withCheckedTransaction(logger: db.logger) { tx in
                        try await tx.advisoryLock(.int64(4711), mode: .exclusive)
                    }
                    try await waitUntil("the transaction waits for the lock") {
                        try await db.scalar("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", as: Int.self) == 1
                    }
                    _ = try await holder.query("SELECT pg_advisory_unlock(4711)", logger: db.logger).collect()
                    try await waited
                }
                let lock = try Self.span("pglocks.lock", in: spans)
                let transaction = try Self.span("pglocks.transaction", in: spans)
                let root = try Self.span("test request", in: spans)
                #expect(lock.parentSpanID == transaction.spanID)
                #expect(transaction.parentSpanID == root.spanID)
                #expect(lock.attributes.get("pglocks.lock.key") == .string("4711"))
                #expect(lock.attributes.get("pglocks.lock.mode") == .string("exclusive"))
                #expect(lock.attributes.get("pglocks.lock.scope") == .string("transaction"))
                #expect(lock.attributes.get("pglocks.lock.outcome") == .string("acquired after waiting"))
                guard case .double(let waitedMs)? = lock.attributes.get("pglocks.lock.waited_ms") else {
                    Issue.record("waited_ms missing: \(lock.attributes)")
                    return
                }
                #expect(waitedMs > 0)
                #expect(transaction.attributes.get("pglocks.transaction.outcome") == .string("committed"))
                #expect(transaction.attributes.get("pglocks.transaction.attempt") == .int64(1))
            }
        }
    }

    @Test func aLockNotGrantedInTimeIsASpanWithOutcomeNotAcquiredAndACancelledWaitSaysCancelled() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.withConnections(1) { connections in
                let holder = connections[0]
                _ = try await holder.query("SELECT pg_advisory_lock(8)", logger: db.logger).collect()
                let spans = try await Self.traced {
                    await #expect(throws: PostgresLocksError.self) {
                        try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                            try await tx.advisoryLock(.int64(8), wait: .timeout(.milliseconds(50)))
                        }
                    }
                    let waiting = Task {
                        try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                            try await tx.advisoryLock(.int64(8))
                        }
                    }
                    try await waitUntil("the second transaction waits") {
                        try await db.scalar("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", as: Int.self) == 1
                    }
                    waiting.cancel()
                    _ = await waiting.result
                }
                let locks = spans.filter { $0.operationName == "pglocks.lock" }
                #expect(locks.map { $0.attributes.get("pglocks.lock.outcome") } == [.string("not acquired"), .string("cancelled")])
                #expect(locks.last?.errors.isEmpty == false)
            }
        }
    }

    @Test func aRetriedTransactionIsOneSpanWithAnEventPerRetryAndAChildPerAttempt() async throws {
        try await TestDatabase.withDatabase { db in
            let spans = try await Self.traced {
                try await db.client.withRetryingTransaction(retry: RetryPolicy(initialBackoff: .milliseconds(1)), logger: db.logger) { tx in
                    if tx.attempt == 1 {
                        try await tx.query("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")
                    }
                    try await tx.query("SELECT 1")
                }
            }
            let retrying = try Self.span("pglocks.retrying_transaction", in: spans)
            #expect(retrying.attributes.get("pglocks.transaction.attempts") == .int64(2))
            #expect(retrying.events.map(\.name) == ["retry"])
            #expect(retrying.events.first?.attributes.get("pglocks.retry.reason") == .string("serializationFailure"))
            let attempts = spans.filter { $0.operationName == "pglocks.transaction" }
            #expect(attempts.allSatisfy { $0.parentSpanID == retrying.spanID })
            #expect(attempts.map { $0.attributes.get("pglocks.transaction.attempt") } == [.int64(1), .int64(2)])
            #expect(attempts.map { $0.attributes.get("pglocks.transaction.outcome") } == [.string("serializationFailure"), .string("committed")])
        }
    }

    @Test func aGaplessNumberAndAnIngestionBatchAreSpansWithWhatTheyDid() async throws {
        try await TestDatabase.withDatabase { db in
            let counter = try GaplessCounter(table: "invoice_numbers")
            try await counter.migrate(on: db.client, logger: db.logger)
            let ingestion = try ExactlyOnceIngestion<String>(table: QualifiedName("ingested"))
            try await ingestion.migrate(on: db.client, logger: db.logger)
            let spans = try await Self.traced {
                try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                    _ = try await counter.next(scope: "tenant-7", in: tx)
                }
                try await ingestion.ingest(keys: ["a", "b", "a", "c"], on: db.client, logger: db.logger)
                try await ingestion.ingest(keys: ["b", "d"], on: db.client, logger: db.logger)
            }
            let number = try Self.span("pglocks.gapless_number", in: spans)
            #expect(number.attributes.get("pglocks.counter.scope") == .string("tenant-7"))
            #expect(number.attributes.get("pglocks.counter.number") == .int64(1))
            #expect(number.attributes.get("pglocks.counter.strategy") == .string(counter.strategy.rawValue))
            let batches = spans.filter { $0.operationName == "pglocks.ingestion_batch" }
            #expect(batches.map { $0.attributes.get("pglocks.ingestion.keys") } == [.int64(3), .int64(2)])
            #expect(batches.map { $0.attributes.get("pglocks.ingestion.new") } == [.int64(3), .int64(1)])
            #expect(batches.map { $0.attributes.get("pglocks.ingestion.duplicates") } == [.int64(0), .int64(1)])
        }
    }
}
