#if canImport(FoundationEssentials)
import struct FoundationEssentials.UUID
#else
import struct Foundation.UUID
#endif
import PostgresNIO

/// A business key that ``ExactlyOnceIngestion`` can store once: `String` (a `text` column) or
/// `UUID` (a `uuid` column).
///
/// Keys are compared and ordered **as PostgreSQL compares them**, byte by byte, never with
/// Swift's `String` equality: Swift treats canonically equivalent strings (`"é"` precomposed
/// and `"e\u{301}"`) as equal, PostgreSQL's `text` does not, so deduplicating with a Swift
/// `Set<String>` could drop a key the database would store. The byte order is also the order
/// in which every producer inserts its keys, which is what keeps producers free of deadlocks.
public protocol IngestionKey: Sendable, PostgresArrayEncodable, PostgresNonThrowingEncodable, PostgresArrayDecodable where _DecodableType == Self {
    /// The PostgreSQL type of the key column.
    static var ingestionColumnType: IngestionKeyColumnType { get }

    /// Compares two keys in the one global order used by every producer: the order of their
    /// bytes as PostgreSQL stores them (UTF-8 for text, the 16 bytes of a uuid). Returns a
    /// negative number, zero (the same key for PostgreSQL) or a positive number.
    static func ingestionCompare(_ lhs: Self, _ rhs: Self) -> Int

    /// The positions of `keys` sorted by key in the order of ``ingestionCompare(_:_:)`` and,
    /// among equal keys, by position. A default is provided; `String` and `UUID` implement it
    /// for their own type, so the sort runs specialized.
    static func ingestionOrder(_ keys: [Self]) -> [Int]

    /// Throws ``PostgresLocksError/Code/invalidArgument`` if PostgreSQL could not store or
    /// index the key (empty, a NUL byte, longer than `maximumBytes`).
    func validateIngestionKey(maximumBytes: Int) throws(PostgresLocksError)
}

extension IngestionKey {
    /// Sorts positions with ``ingestionCompare(_:_:)``, ties by position.
    public static func ingestionOrder(_ keys: [Self]) -> [Int] {
        sortedPositions(keys)
    }
}

/// The positions of `keys`, ascending by key, ties by position. Called from concrete contexts,
/// so the compiler specializes it for each key type.
func sortedPositions<Key: IngestionKey>(_ keys: [Key]) -> [Int] {
    keys.indices.sorted { a, b in
        let c = Key.ingestionCompare(keys[a], keys[b])
        return c != 0 ? c < 0 : a < b
    }
}

/// The column type of an ingestion key: `text` or `uuid`.
public struct IngestionKeyColumnType: Sendable, Hashable, CustomStringConvertible {
    /// The type as written in SQL (from a fixed list, never from user input).
    public let sqlName: String
    /// The array type the keys are bound as.
    let arraySQLName: String

    /// `text COLLATE "C"`: the table this library creates compares keys byte by byte.
    public static let text = IngestionKeyColumnType(sqlName: "text", arraySQLName: "text[]")
    /// `uuid`.
    public static let uuid = IngestionKeyColumnType(sqlName: "uuid", arraySQLName: "uuid[]")

    public var description: String { sqlName }
}

extension String: IngestionKey {
    /// `text`.
    public static var ingestionColumnType: IngestionKeyColumnType { .text }

    /// Byte-wise comparison of the UTF-8 forms (PostgreSQL's `COLLATE "C"` order).
    public static func ingestionCompare(_ lhs: String, _ rhs: String) -> Int {
        let fast = lhs.utf8.withContiguousStorageIfAvailable { l in
            rhs.utf8.withContiguousStorageIfAvailable { r in
                compareBytes(UnsafeRawBufferPointer(l), UnsafeRawBufferPointer(r))
            }
        }
        if let fast = fast ?? nil { return fast }
        var left = lhs.utf8.makeIterator(), right = rhs.utf8.makeIterator()
        while true {
            switch (left.next(), right.next()) {
            case (nil, nil): return 0
            case (nil, _): return -1
            case (_, nil): return 1
            case let (l?, r?): if l != r { return l < r ? -1 : 1 }
            }
        }
    }

    /// Byte order, ties by position (specialized for `String`).
    public static func ingestionOrder(_ keys: [String]) -> [Int] {
        sortedPositions(keys)
    }

    /// Rejects an empty key, a NUL byte (PostgreSQL's `text` cannot hold one) and keys longer
    /// than `maximumBytes` UTF-8 bytes.
    public func validateIngestionKey(maximumBytes: Int) throws(PostgresLocksError) {
        let count = utf8.count
        guard count > 0 else { throw .invalidArgument("an ingestion key is empty") }
        guard count <= maximumBytes else {
            throw .invalidArgument("an ingestion key is \(count) bytes long; at most \(maximumBytes) (it starts with \(String(decoding: utf8.prefix(32), as: UTF8.self).debugDescription))")
        }
        guard !utf8.contains(0) else { throw .invalidArgument("an ingestion key contains a NUL byte, which PostgreSQL text cannot store") }
    }
}

extension UUID: IngestionKey {
    /// `uuid`.
    public static var ingestionColumnType: IngestionKeyColumnType { .uuid }

    /// Byte-wise comparison of the 16 bytes (PostgreSQL's `uuid` order).
    public static func ingestionCompare(_ lhs: UUID, _ rhs: UUID) -> Int {
        withUnsafeBytes(of: lhs.uuid) { l in
            withUnsafeBytes(of: rhs.uuid) { r in compareBytes(l, r) }
        }
    }

    /// Byte order, ties by position. UUIDs are compared as two big-endian 64-bit halves,
    /// which is their byte order.
    public static func ingestionOrder(_ keys: [UUID]) -> [Int] {
        var halves: [(high: UInt64, low: UInt64, position: Int)] = []
        halves.reserveCapacity(keys.count)
        for (position, key) in keys.enumerated() {
            let (high, low) = withUnsafeBytes(of: key.uuid) { bytes in
                (UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                 UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
            }
            halves.append((high, low, position))
        }
        halves.sort { ($0.high, $0.low, $0.position) < ($1.high, $1.low, $1.position) }
        return halves.map(\.position)
    }

    /// Every UUID can be stored.
    public func validateIngestionKey(maximumBytes: Int) throws(PostgresLocksError) {}
}

/// `memcmp` order: the shorter of two buffers with a common prefix comes first.
@inline(__always)
private func compareBytes(_ l: UnsafeRawBufferPointer, _ r: UnsafeRawBufferPointer) -> Int {
    let common = min(l.count, r.count)
    for index in 0..<common {
        let a = l[index], b = r[index]
        if a != b { return a < b ? -1 : 1 }
    }
    return l.count == r.count ? 0 : (l.count < r.count ? -1 : 1)
}
