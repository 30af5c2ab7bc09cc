/// A PostgreSQL advisory lock key, in one of the server's two disjoint keyspaces.
///
/// PostgreSQL has two families of advisory lock functions, and their keys never collide:
///
/// - the single-`bigint` form, `pg_advisory_lock(bigint)`: ``int64(_:)``;
///   `pg_locks` shows it with `objsubid = 1`;
/// - the two-`int` form, `pg_advisory_lock(int, int)`: ``pair(namespace:id:)``, a namespace and
///   an id within it; `pg_locks` shows it with `objsubid = 2`.
///
/// `pg_advisory_lock(1)` and `pg_advisory_lock(0, 1)` are different locks, so a key always
/// knows its ``keyspace``. Names are mapped to the bigint keyspace with ``hashed(_:scheme:)``
/// or ``named(_:scheme:)``; see ``HashScheme`` for the schemes that match existing services.
///
/// ```swift
/// let tenant = LockKey.hashed("tenant-a")              // md5-8, like Python services do
/// let order = LockKey.pair(namespace: 1, id: 12345)    // "1:12345"
/// let parsed = try LockKey(text: "payment:order-123")  // a name: hashed
/// ```
///
/// Keys are `Comparable` in one total order (see ``<(_:_:)``), so a set of keys can be
/// sorted before locking them one by one: every process that locks many keys in the same
/// order cannot deadlock on them with another that does the same.
///
/// The ``description`` is the key's text form (`"-42"`, `"1:12345"`), which
/// ``init(text:scheme:)`` reads back to the same key.
public struct LockKey: Sendable, Hashable {
    /// The key's value. A struct around an enum, so that keyspaces can be added later
    /// without breaking clients that `switch` over them.
    @usableFromInline
    enum Storage: Sendable, Hashable {
        /// The single-bigint form.
        case int64(Int64)
        /// The two-int form: namespace, id.
        case pair(Int32, Int32)
    }

    @usableFromInline
    let storage: Storage

    @inlinable
    init(storage: Storage) {
        self.storage = storage
    }

    /// Which of PostgreSQL's advisory lock keyspaces a key belongs to.
    public enum Keyspace: Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// `pg_advisory_lock(bigint)`: one signed 64-bit key (`pg_locks.objsubid = 1`).
        case int64
        /// `pg_advisory_lock(int, int)`: a signed 32-bit namespace and id (`pg_locks.objsubid = 2`).
        case pair

        /// `"int64"` or `"pair"`.
        public var description: String {
            switch self {
            case .int64: "int64"
            case .pair: "pair"
            }
        }
    }

    /// A key in the single-bigint keyspace, for `pg_advisory_lock(bigint)`.
    @inlinable
    public static func int64(_ value: Int64) -> LockKey {
        LockKey(storage: .int64(value))
    }

    /// A key in the two-int keyspace, for `pg_advisory_lock(int, int)`: an `id` within a
    /// `namespace` (for example a table's number and a row's id).
    @inlinable
    public static func pair(namespace: Int32, id: Int32) -> LockKey {
        LockKey(storage: .pair(namespace, id))
    }

    /// The keyspace this key belongs to.
    public var keyspace: Keyspace {
        switch storage {
        case .int64: .int64
        case .pair: .pair
        }
    }

    /// The bigint, if this key is in the ``Keyspace/int64`` keyspace (hashed keys are).
    public var int64Value: Int64? {
        if case .int64(let value) = storage { return value }
        return nil
    }

    /// The namespace and id, if this key is in the ``Keyspace/pair`` keyspace.
    public var pairValue: (namespace: Int32, id: Int32)? {
        if case .pair(let namespace, let id) = storage { return (namespace, id) }
        return nil
    }
}

extension LockKey: Comparable {
    /// The one global order of lock keys, used to sort keys before locking several of them.
    ///
    /// Keys are ordered first by keyspace, every ``Keyspace/int64`` key before every
    /// ``Keyspace/pair`` key; then bigint keys by their signed value (`Int64.min` first), and
    /// pair keys by namespace, then by id, both signed. The order is total and consistent with
    /// `==`: two keys compare equal exactly when they are the same lock.
    public static func < (lhs: LockKey, rhs: LockKey) -> Bool {
        switch (lhs.storage, rhs.storage) {
        case (.int64(let a), .int64(let b)):
            return a < b
        case (.int64, .pair):
            return true
        case (.pair, .int64):
            return false
        case (.pair(let namespaceA, let idA), .pair(let namespaceB, let idB)):
            return (namespaceA, idA) < (namespaceB, idB)
        }
    }
}

extension LockKey: Codable {
    /// Decodes a key from its text form, a single string such as `"-42"` or `"1:12345"`.
    ///
    /// Only the two numeric forms are accepted: a name is not hashed here, because the
    /// scheme it was meant to be hashed with is not recorded. A string keeps 64-bit values
    /// exact in JSON, where numbers beyond 2^53 lose precision in many readers.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let key = LockKey(numericText: text) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "expected a lock key as \"INT64\" or \"NAMESPACE:ID\", got \(String(reflecting: text))"
            )
        }
        self = key
    }

    /// Encodes the key as its text form (``description``), a single string.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
