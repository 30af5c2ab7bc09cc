/// What one ingestion call did.
public struct IngestionReport<Key: IngestionKey>: Sendable {
    /// How many events the call received (duplicates included).
    public var eventCount: Int
    /// How many distinct keys they carried.
    public var distinctKeyCount: Int
    /// The keys this call stored, ascending: the handler ran, once, for the first event of
    /// each of them. Every other event was a duplicate (stored earlier or by another producer,
    /// or repeated within the batch) and was not handed to the handler.
    public var newKeys: [Key]
    /// How many transactions committed (more than one when the batch was split).
    public var committedTransactions: Int

    /// Creates a report.
    public init(eventCount: Int = 0, distinctKeyCount: Int = 0, newKeys: [Key] = [], committedTransactions: Int = 0) {
        self.eventCount = eventCount
        self.distinctKeyCount = distinctKeyCount
        self.newKeys = newKeys
        self.committedTransactions = committedTransactions
    }

    /// How many events were new (the handler received this many).
    public var newEventCount: Int { newKeys.count }

    /// How many events were not new: already stored, or repeated within the batch.
    public var duplicateEventCount: Int { eventCount - newKeys.count }
}

/// A split batch failed after some of its transactions had committed.
///
/// Exactly-once holds **per key**: the keys in ``committed`` are stored and their handler
/// effects are committed; the keys in ``uncommittedKeys`` (the failed transaction's and those
/// not attempted) are not stored and nothing of theirs was committed. Sending the same batch
/// again is safe: the committed keys come back as duplicates and only the rest is ingested.
///
/// When the first transaction fails, nothing was committed and the underlying error is thrown
/// as it is instead of this one.
public struct IngestionInterrupted<Key: IngestionKey>: Error, CustomStringConvertible {
    /// The transactions that committed before the failure (``IngestionReport/eventCount``
    /// counts the events whose keys they covered).
    public var committed: IngestionReport<Key>
    /// The distinct keys that were not committed, ascending.
    public var uncommittedKeys: [Key]
    /// Why the next transaction failed (usually a ``PostgresLocksError``).
    public var underlying: any Error

    /// Creates the error.
    public init(committed: IngestionReport<Key>, uncommittedKeys: [Key], underlying: any Error) {
        self.committed = committed
        self.uncommittedKeys = uncommittedKeys
        self.underlying = underlying
    }

    public var description: String {
        "ingestion interrupted after \(committed.committedTransactions) committed transaction(s): \(committed.distinctKeyCount) keys committed (\(committed.newKeys.count) new), \(uncommittedKeys.count) keys not committed; cause: \(underlying)"
    }
}
