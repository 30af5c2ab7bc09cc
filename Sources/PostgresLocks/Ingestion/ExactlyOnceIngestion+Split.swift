import Logging
import Metrics
import PostgresNIO

extension ExactlyOnceIngestion {
    /// Ingests `events` in transactions of its own: the distinct keys are sorted and split
    /// into runs of at most ``maximumKeysPerTransaction``, and each run is stored, and
    /// handled, in one transaction, re-run on a deadlock or serialization failure following
    /// `retry`.
    ///
    /// Exactly-once holds **per key**. If a transaction fails after earlier ones committed,
    /// ``IngestionInterrupted`` says which keys are committed and which are not; if the first
    /// one fails, nothing was committed and its error is thrown as it is. Either way, sending
    /// the same batch again is safe.
    ///
    /// `handler` may run more than once for the same events when a transaction is re-run
    /// (the earlier run was rolled back): keep its effects in the database, in `tx`.
    ///
    /// - Parameters:
    ///   - events: the batch, in any order; events with the same key are duplicates, and only
    ///     the first of them can be new.
    ///   - key: each event's business key.
    ///   - runner: a `PostgresClient` (one leased connection per transaction; cancelling the
    ///     task also ends a server-side wait for another producer's transaction, through the
    ///     client) or a `PostgresConnection` (every transaction on it, one after another; a
    ///     cancelled wait closes it).
    ///   - retry: when a transaction is re-run (deadlock, serialization failure). The default,
    ///     ``RetryPolicy/resolvingCommitOutcome``, also settles a `COMMIT` lost in flight, so the
    ///     report (and ``IngestionInterrupted``) says exactly what committed, and on a client
    ///     re-runs a transaction whose connection was lost before `COMMIT`; it costs one
    ///     statement per transaction. Pass ``RetryPolicy/default`` to skip it. On a connection
    ///     a lost connection is not re-run (it is gone), and a lost `COMMIT` throws
    ///     ``PostgresLocksError/Code/commitOutcomeUnknown`` with its transaction id.
    ///   - options: isolation level and timeouts of each transaction.
    ///   - logger: where statements are logged.
    ///   - isolation: the actor `handler` runs on; the caller's (`#isolation`) by default.
    ///   - handler: receives each transaction and its new events (first occurrences, in batch
    ///     order); not called for a transaction with no new event.
    /// - Returns: what was stored, over all transactions.
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` before anything is sent, for a bad
    ///   key; ``IngestionInterrupted`` or the failing transaction's error.
    @discardableResult
    public func ingest<Event: Sendable>(
        _ events: [Event],
        keyedBy key: (Event) throws -> Key,
        on runner: some TransactionRunner,
        retry: RetryPolicy = .resolvingCommitOutcome,
        options: TransactionOptions = .default,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        handler: (Transaction, [Event]) async throws -> Void
    ) async throws -> IngestionReport<Key> {
        try retry.validate()
        let batch = try IngestionBatch(eventKeys: events.map(key), maximumKeyBytes: Self.maximumKeyBytes)
        return try await ingestSplit(batch, logger: logger) { range in
            try await runner.withRetryingTransaction(retry: retry, options: options, logger: logger) { tx in
                try await ingestChunk(batch, range: range, events: events, in: tx, handler: handler)
            }
        }
    }

    /// Bare keys (the events are the keys); see
    /// ``ingest(_:keyedBy:on:retry:options:logger:isolation:handler:)``.
    @discardableResult
    public func ingest(
        keys: [Key],
        on runner: some TransactionRunner,
        retry: RetryPolicy = .resolvingCommitOutcome,
        options: TransactionOptions = .default,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        handler: (Transaction, [Key]) async throws -> Void = { _, _ in }
    ) async throws -> IngestionReport<Key> {
        try await ingest(keys, keyedBy: { $0 }, on: runner, retry: retry, options: options, logger: logger, handler: handler)
    }

    /// Runs one transaction per chunk, in ascending key order, and assembles the report.
    private func ingestSplit(
        _ batch: IngestionBatch<Key>,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ runChunk: (Range<Int>) async throws -> [Int]
    ) async throws -> IngestionReport<Key> {
        var report = IngestionReport<Key>()
        let chunks = batch.chunks(maximum: maximumKeysPerTransaction)
        for (number, range) in chunks.enumerated() {
            let inserted: [Int]
            do {
                inserted = try await runChunk(range)
            } catch {
                guard number > 0 else { throw error }
                Counter(label: "pglocks_ingestion_interrupted_total").increment()
                logger.warning("ingestion interrupted after \(number) of \(chunks.count) transactions committed", metadata: ["error": .error(error)])
                throw IngestionInterrupted(
                    committed: report, uncommittedKeys: Array(batch.keys[range.lowerBound...]), underlying: error
                )
            }
            report.newKeys += inserted.map { batch.keys[$0] }
            report.distinctKeyCount += range.count
            report.committedTransactions += 1
            let events = batch.eventCount(in: range)
            report.eventCount += events
            Counter(label: "pglocks_ingestion_events_total", dimensions: [("outcome", "new")]).increment(by: inserted.count)
            Counter(label: "pglocks_ingestion_events_total", dimensions: [("outcome", "duplicate")]).increment(by: events - inserted.count)
        }
        return report
    }
}
