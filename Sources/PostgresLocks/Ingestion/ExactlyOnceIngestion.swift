import Logging
import PostgresNIO
import Tracing

/// Ingests batches of events keyed by a business key so that each key is stored **once** and
/// the caller's handler runs **once per key**, in the transaction that stored it, however many
/// producers send the same keys concurrently.
///
/// ```swift
/// let ingestion = try ExactlyOnceIngestion<UUID>(table: QualifiedName("ingested_events"))
/// try await ingestion.migrate(on: client, logger: logger)
/// let report = try await ingestion.ingest(events, keyedBy: \.id, on: client, logger: logger) { tx, newEvents in
///     // Runs only for events whose key was not stored before, in the same transaction:
///     // commit together or not at all.
///     try await tx.query("INSERT INTO orders (id, amount) SELECT * FROM unnest(\(newEvents.map(\.id)), \(newEvents.map(\.amount)))")
/// }
/// print(report.newEventCount, report.duplicateEventCount)
/// ```
///
/// How it works: the batch's keys are validated, deduplicated and sorted (byte order, the same
/// for every producer) on the client; one statement
/// `INSERT INTO t (key) SELECT k FROM unnest($1) ON CONFLICT (key) DO NOTHING RETURNING key`
/// inserts them in that order (one round trip, the new keys coming back as one array); the returned keys are the new ones, and the handler receives
/// their events. The unique index is the lock: a producer inserting a key that another
/// producer's open transaction has just inserted waits for that transaction, then either skips
/// the key (it committed) or stores it itself (it rolled back). Because every producer inserts
/// in ascending key order, a producer only ever waits for one that is further along the same
/// order, so producers cannot deadlock each other. No advisory lock is taken: the insert holds
/// a constant number of lock-table entries however many keys it stores. See
/// <doc:IngestingExactlyOnce>.
public struct ExactlyOnceIngestion<Key: IngestionKey>: Sendable {
    /// The table that records which keys were ingested.
    public let table: QualifiedName
    /// The key column: covered by a unique index (or primary key) on that column alone.
    public let keyColumn: SQLIdentifier
    /// The most distinct keys one transaction stores; larger batches are split.
    public let maximumKeysPerTransaction: Int

    /// The default split size: 1,000 keys per transaction (see <doc:IngestingExactlyOnce> for
    /// why, and why it is not bounded by the lock table).
    public static var defaultMaximumKeysPerTransaction: Int { 1_000 }

    /// The largest split size accepted.
    public static var maximumAllowedKeysPerTransaction: Int { 100_000 }

    /// The longest key accepted, in bytes: comfortably below PostgreSQL's B-tree entry limit
    /// (about 2,700 bytes), so a key is rejected here rather than by the index mid-batch.
    public static var maximumKeyBytes: Int { 1_024 }

    /// Describes an ingestion into `table`, recording keys in `keyColumn`.
    ///
    /// - Parameters:
    ///   - table: the key table. ``migrate(on:logger:)`` makes
    ///     `(key <type> PRIMARY KEY, ingested_at timestamptz)`; a table of your own works if
    ///     ``verifyTable(in:)`` accepts it.
    ///   - keyColumn: the key column; `key` if `nil`.
    ///   - maximumKeysPerTransaction: how many distinct keys one transaction stores, 1…100,000.
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` for an out-of-range split size.
    public init(
        table: QualifiedName,
        keyColumn: SQLIdentifier? = nil,
        maximumKeysPerTransaction: Int = Self.defaultMaximumKeysPerTransaction
    ) throws(PostgresLocksError) {
        guard (1...Self.maximumAllowedKeysPerTransaction).contains(maximumKeysPerTransaction) else {
            throw .invalidArgument("maximumKeysPerTransaction must be from 1 to \(Self.maximumAllowedKeysPerTransaction); found \(maximumKeysPerTransaction)")
        }
        self.table = table
        if let keyColumn {
            self.keyColumn = keyColumn
        } else {
            self.keyColumn = try SQLIdentifier("key")
        }
        self.maximumKeysPerTransaction = maximumKeysPerTransaction
    }

    // MARK: - In the caller's transaction

    /// Ingests `events` inside `transaction`: stores each key not stored yet and runs `handler`
    /// with the events that carried them, in the same transaction.
    ///
    /// Everything commits or rolls back with `transaction`: if `handler` throws, let the error
    /// end the transaction (do not catch it and commit, or the keys would be stored without
    /// the handler's effects). Take one call per transaction: keys stored by an earlier call
    /// in the same transaction break the single ascending order that rules out deadlocks.
    ///
    /// - Parameters:
    ///   - events: the batch, in any order; events with the same key are duplicates, and only
    ///     the first of them can be new.
    ///   - key: each event's business key.
    ///   - transaction: an open transaction (READ COMMITTED recommended: under REPEATABLE READ
    ///     or SERIALIZABLE a key committed by a concurrent producer fails with 40001).
    ///   - isolation: the actor `handler` runs on; the caller's (`#isolation`) by default.
    ///   - handler: receives the transaction and the new events (first occurrences, in batch
    ///     order); not called when no event is new.
    /// - Returns: what was stored (``IngestionReport/committedTransactions`` is 0: committing
    ///   is yours).
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` before anything is sent, for a
    ///   bad key or more than ``maximumKeysPerTransaction`` distinct keys; otherwise the
    ///   statement's or the handler's error.
    @discardableResult
    public func ingest<Event: Sendable>(
        _ events: [Event],
        keyedBy key: (Event) throws -> Key,
        in transaction: Transaction,
        isolation: isolated (any Actor)? = #isolation,
        handler: (Transaction, [Event]) async throws -> Void
    ) async throws -> IngestionReport<Key> {
        let batch = try IngestionBatch(eventKeys: events.map(key), maximumKeyBytes: Self.maximumKeyBytes)
        guard batch.keys.count <= maximumKeysPerTransaction else {
            throw PostgresLocksError.invalidArgument(
                "\(batch.keys.count) distinct keys for one transaction; at most \(maximumKeysPerTransaction): use the client or connection form, which splits the batch, or raise maximumKeysPerTransaction"
            )
        }
        guard !batch.keys.isEmpty else { return IngestionReport() }
        let inserted = try await ingestChunk(batch, range: batch.keys.indices, events: events, in: transaction, handler: handler)
        return IngestionReport(
            eventCount: batch.eventCount, distinctKeyCount: batch.keys.count,
            newKeys: inserted.map { batch.keys[$0] }, committedTransactions: 0
        )
    }

    /// Stores the keys of `range` and runs the handler for the new ones; returns the positions
    /// (in `batch.keys`) that were new.
    func ingestChunk<Event: Sendable>(
        _ batch: IngestionBatch<Key>,
        range: Range<Int>,
        events: [Event],
        in transaction: Transaction,
        isolation: isolated (any Actor)? = #isolation,
        handler: (Transaction, [Event]) async throws -> Void
    ) async throws -> [Int] {
        try await LibrarySpan.with("pglocks.ingestion_batch") { span in
            span.attributes["pglocks.ingestion.table"] = "\(table)"
            span.attributes["pglocks.ingestion.keys"] = range.count
            let statement = insertStatement(Array(batch.keys[range]))
            // It may wait for another producer's transaction on the same keys: cancellable.
            let result = try await transaction.recordingAbort {
                try await transaction.connection.runCancellableLockStatement(statement, canceller: transaction.canceller, logger: transaction.logger)
            }
            let returned = try result.rows[0].decode([Key].self)
            let positions = batch.insertedPositions(in: range, returned: returned)
            span.attributes["pglocks.ingestion.new"] = positions.count
            span.attributes["pglocks.ingestion.duplicates"] = range.count - positions.count
            if !positions.isEmpty {
                let newEvents = positions.map { batch.firstEventIndex[$0] }.sorted().map { events[$0] }
                try await handler(transaction, newEvents)
            }
            return positions
        }
    }
}

extension ExactlyOnceIngestion {
    /// Ingests bare keys (the events are the keys themselves) inside `transaction`; see
    /// ``ingest(_:keyedBy:in:isolation:handler:)``.
    @discardableResult
    public func ingest(
        keys: [Key],
        in transaction: Transaction,
        isolation: isolated (any Actor)? = #isolation,
        handler: (Transaction, [Key]) async throws -> Void = { _, _ in }
    ) async throws -> IngestionReport<Key> {
        try await ingest(keys, keyedBy: { $0 }, in: transaction, handler: handler)
    }
}
