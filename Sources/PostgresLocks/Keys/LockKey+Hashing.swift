import Crypto

extension LockKey {
    /// How a name (a string) becomes a bigint advisory lock key.
    ///
    /// Hashing is one-way and, like any 64-bit hash, can make two names share a lock; the
    /// schemes exist so that Swift code takes the same locks as services that already hash
    /// names this way. Every scheme hashes the name's exact UTF-8 bytes, with no Unicode
    /// normalization: `"caf\u{E9}"` and `"cafe\u{301}"` are equal Swift strings but
    /// different lock keys.
    public struct HashScheme: Sendable, Hashable, CustomStringConvertible {
        @usableFromInline
        enum Kind: Sendable, Hashable {
            case md5FirstEightBytes
            case md5FifteenHex
        }

        @usableFromInline
        let kind: Kind

        @inlinable
        init(_ kind: Kind) { self.kind = kind }

        /// The first eight bytes of the MD5 digest of the UTF-8 bytes, read as a big-endian
        /// signed 64-bit integer (the whole `bigint` range, negative keys included).
        /// Named `"md5-8"`. The default scheme.
        ///
        /// The same as Python's
        /// `int.from_bytes(hashlib.md5(name.encode()).digest()[:8], byteorder="big", signed=True)`.
        public static let md5FirstEightBytes = HashScheme(.md5FirstEightBytes)

        /// The first 15 hexadecimal digits (60 bits) of the MD5 digest of the UTF-8 bytes, so
        /// the key is always between 0 and 2^60 − 1. Named `"md5-15hex"`.
        ///
        /// The same as Python's
        /// `int(hashlib.md5(name.encode()).hexdigest()[:15], 16) & 0x7FFFFFFFFFFFFFFF`.
        public static let md5FifteenHex = HashScheme(.md5FifteenHex)

        /// Every scheme, for tools that list them.
        public static let all: [HashScheme] = [.md5FirstEightBytes, .md5FifteenHex]

        /// The scheme's stable, readable name: `"md5-8"` or `"md5-15hex"`.
        public var name: String {
            switch kind {
            case .md5FirstEightBytes: "md5-8"
            case .md5FifteenHex: "md5-15hex"
            }
        }

        /// The scheme with this ``name``, or nil if there is none.
        public init?(name: String) {
            guard let scheme = Self.all.first(where: { $0.name == name }) else { return nil }
            self = scheme
        }

        /// The scheme's ``name``.
        public var description: String { name }

        /// An SQL expression that computes on the server the key this scheme gives for the text
        /// `textSQL` evaluates to (in a UTF-8 database): for statements run outside the library,
        /// such as the scripts `pglock bench` hands to pgbench. `textSQL` is inserted as it is:
        /// pass SQL the caller wrote, never user text.
        package func serverExpression(forTextSQL textSQL: String) -> String {
            switch kind {
            case .md5FirstEightBytes: "('x' || substr(md5(\(textSQL)), 1, 16))::bit(64)::bigint"
            case .md5FifteenHex: "('x' || substr(md5(\(textSQL)), 1, 15))::bit(60)::bigint"
            }
        }

        /// The bigint key for `name` under this scheme.
        public func int64Key(for name: String) -> Int64 {
            let digest = Insecure.MD5.hash(data: Array(name.utf8))
            var firstEight: UInt64 = 0
            for byte in digest.prefix(8) {
                firstEight = firstEight << 8 | UInt64(byte)
            }
            switch kind {
            case .md5FirstEightBytes:
                return Int64(bitPattern: firstEight)
            case .md5FifteenHex:
                // 15 hex digits are the top 60 of these 64 bits; the result is never negative.
                return Int64(firstEight >> 4)
            }
        }
    }

    /// A bigint key made by hashing `name` with `scheme`.
    ///
    /// Any string is accepted, the empty one included; use ``named(_:scheme:)`` to reject
    /// names that are empty, too long or contain NUL. The key is an ordinary
    /// ``Keyspace/int64`` key: its ``description`` is the number, not the name.
    public static func hashed(_ name: String, scheme: HashScheme = .md5FirstEightBytes) -> LockKey {
        .int64(scheme.int64Key(for: name))
    }

    /// A bigint key made by hashing `name` with `scheme`, after checking the name: it must
    /// not be empty, must be at most ``maximumTextLength`` UTF-8 bytes long and must not
    /// contain NUL.
    ///
    /// Unlike ``init(text:scheme:)``, the name is always hashed, even when it looks like a
    /// number: `named("42")` is not `.int64(42)`.
    /// - Throws: ``PostgresLocksError`` with code `invalidArgument`, saying what is wrong.
    public static func named(_ name: String, scheme: HashScheme = .md5FirstEightBytes) throws(PostgresLocksError) -> LockKey {
        let length = name.utf8.count
        guard length > 0 else {
            throw .invalidArgument("lock name is empty")
        }
        guard length <= maximumTextLength else {
            throw .invalidArgument("lock name is \(length) bytes long; at most \(maximumTextLength) are allowed")
        }
        guard !name.utf8.contains(0) else {
            throw .invalidArgument("lock name contains NUL")
        }
        return hashed(name, scheme: scheme)
    }
}
