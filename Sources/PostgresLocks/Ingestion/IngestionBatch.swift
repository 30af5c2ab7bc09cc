/// A batch of event keys prepared for ingestion, before anything is sent: every key validated,
/// duplicates within the batch merged, the distinct keys sorted into the one global order
/// (``IngestionKey/ingestionCompare(_:_:)``). Pure, so it is tested without a server.
struct IngestionBatch<Key: IngestionKey> {
    /// The distinct keys, ascending.
    let keys: [Key]
    /// For each distinct key (same position), the index of the first event that carried it.
    let firstEventIndex: [Int]
    /// For each distinct key (same position), how many events carried it.
    let occurrences: [Int]
    /// How many events the batch had.
    let eventCount: Int

    /// Validates and sorts `eventKeys` (one key per event, in event order).
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` for the first bad key, naming its event.
    init(eventKeys: [Key], maximumKeyBytes: Int) throws(PostgresLocksError) {
        for index in eventKeys.indices {
            do throws(PostgresLocksError) {
                try eventKeys[index].validateIngestionKey(maximumBytes: maximumKeyBytes)
            } catch {
                throw Self.badKey(event: index, error)
            }
        }
        // Sort event positions by key, ties by position, so the first of equal keys is the
        // earliest event carrying it.
        // (A requirement of the key type, so that this, the one O(n log n) step, runs
        // specialized for it.)
        let order = Key.ingestionOrder(eventKeys)
        var keys: [Key] = []
        var first: [Int] = []
        var occurrences: [Int] = []
        keys.reserveCapacity(order.count)
        first.reserveCapacity(order.count)
        occurrences.reserveCapacity(order.count)
        for index in order {
            if let last = keys.last, Key.ingestionCompare(last, eventKeys[index]) == 0 {
                occurrences[occurrences.count - 1] += 1
                continue
            }
            keys.append(eventKeys[index])
            first.append(index)
            occurrences.append(1)
        }
        self.keys = keys
        self.firstEventIndex = first
        self.occurrences = occurrences
        self.eventCount = eventKeys.count
    }

    static func badKey(event index: Int, _ error: PostgresLocksError) -> PostgresLocksError {
        .invalidArgument("event \(index): \(error.message); nothing was ingested")
    }

    /// Consecutive ranges of ``keys`` of at most `maximum` keys each (ascending, so every
    /// transaction still inserts in the global order).
    func chunks(maximum: Int) -> [Range<Int>] {
        stride(from: 0, to: keys.count, by: maximum).map { $0..<Swift.min($0 + maximum, keys.count) }
    }

    /// How many events carried the keys of `range`.
    func eventCount(in range: Range<Int>) -> Int {
        occurrences[range].reduce(0, +)
    }

    /// Which keys of `range` were inserted, given the keys the server returned (any order).
    /// Returns positions in ``keys``, ascending.
    func insertedPositions(in range: Range<Int>, returned: [Key]) -> [Int] {
        var returned = returned
        if !Self.isAscending(returned) {
            returned.sort { Key.ingestionCompare($0, $1) < 0 }
        }
        var positions: [Int] = []
        positions.reserveCapacity(returned.count)
        var cursor = range.lowerBound
        for key in returned {
            while cursor < range.upperBound, Key.ingestionCompare(keys[cursor], key) < 0 { cursor += 1 }
            if cursor < range.upperBound, Key.ingestionCompare(keys[cursor], key) == 0 {
                positions.append(cursor)
                cursor += 1
            }
        }
        return positions
    }

    static func isAscending(_ values: [Key]) -> Bool {
        var index = 1
        while index < values.count {
            if Key.ingestionCompare(values[index - 1], values[index]) >= 0 { return false }
            index += 1
        }
        return true
    }
}
