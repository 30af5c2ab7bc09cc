/// Follows the message boundaries of the server's side of the PostgreSQL protocol, to read the
/// transaction status every `ReadyForQuery` carries, to tell whether a statement's end has been
/// read without the `ReadyForQuery` that follows it, and to count the `ROLLBACK` command tags.
/// Pure: fed bytes as they arrive, in chunks of any size; unit-tested without a socket.
///
/// Every backend message is a type byte and a four-byte big-endian length that counts itself
/// and the body. `ReadyForQuery` (`Z`, length 5) has one body byte: `I` idle, `T` in a
/// transaction block, `E` in a failed transaction block. `CommandComplete` (`C`) carries the
/// command tag as a NUL-terminated string: `ROLLBACK` is what a `COMMIT` of a failed
/// transaction answers, which lets a `COMMIT` run as a prepared statement (whose tag
/// PostgresNIO does not return) and still be checked.
struct BackendMessageFramer: Sendable {
    /// What one call of ``consume(_:)`` saw.
    struct Observation: Equatable, Sendable {
        /// The status of the last `ReadyForQuery` that ended in the bytes.
        var status: TransactionStatus?
        /// How many `CommandComplete` messages tagged `ROLLBACK` ended in the bytes.
        var rollbackTags = 0
        /// Whether, after the bytes, a statement's end (`CommandComplete`, `EmptyQueryResponse`
        /// or `ErrorResponse`) has been read and the `ReadyForQuery` after it has not: nil when
        /// the bytes held neither.
        var awaitingReady: Bool?
    }

    /// What the last `ReadyForQuery` said.
    enum TransactionStatus: UInt8, Sendable {
        /// Not inside a transaction block.
        case idle = 0x49  // I
        /// Inside a transaction block.
        case inTransaction = 0x54  // T
        /// Inside a failed transaction block (statements are refused until it ends).
        case failed = 0x45  // E
    }

    private var headerBytesSeen = 0
    private var type: UInt8 = 0
    private var length: UInt32 = 0
    private var bodyBytesLeft = 0
    private var wantsStatus = false
    /// In a `CommandComplete` whose body is as long as `ROLLBACK\0`: how many of its bytes
    /// matched so far (nil: not such a message, or a byte differed).
    private var rollbackBytesMatched: Int?
    /// The body of a `CommandComplete` whose tag is `ROLLBACK`.
    private static let rollbackTag: [UInt8] = Array("ROLLBACK\0".utf8)
    /// Set when the bytes stop making sense as messages (installed mid-message, or not this
    /// protocol): nothing is reported after that.
    private(set) var isLost = false

    /// The message types a server sends after startup, as a bit per ASCII code (low and high
    /// 64 codes): checked for every message header, so no hashing.
    private static let knownTypes: (low: UInt64, high: UInt64) = "123ACDEGHIKNRSTVWZcdnstv".utf8.reduce((0, 0)) { mask, type in
        type < 64 ? (mask.0 | 1 << UInt64(type), mask.1) : (mask.0, mask.1 | 1 << UInt64(type - 64))
    }

    private static func isKnownType(_ type: UInt8) -> Bool {
        switch type {
        case 0..<64: return knownTypes.low & (1 << UInt64(type)) != 0
        case 64..<128: return knownTypes.high & (1 << UInt64(type - 64)) != 0
        default: return false
        }
    }

    /// Reads `bytes` and returns what ended in them: the status of the last `ReadyForQuery`, and
    /// how many `ROLLBACK` command tags.
    mutating func consume(_ bytes: UnsafeRawBufferPointer) -> Observation {
        var seen = Observation()
        var index = 0
        let count = bytes.count
        while index < count && !isLost {
            if bodyBytesLeft > 0 {
                if wantsStatus {
                    wantsStatus = false
                    guard let status = TransactionStatus(rawValue: bytes[index]) else {
                        isLost = true
                        return seen
                    }
                    seen.status = status
                    seen.awaitingReady = false
                    index += 1
                    bodyBytesLeft -= 1
                    continue
                }
                if let matched = rollbackBytesMatched {
                    if bytes[index] == Self.rollbackTag[matched] {
                        rollbackBytesMatched = matched + 1
                        if matched + 1 == Self.rollbackTag.count { seen.rollbackTags += 1 }
                    } else {
                        rollbackBytesMatched = nil
                    }
                    index += 1
                    bodyBytesLeft -= 1
                    if bodyBytesLeft == 0 { rollbackBytesMatched = nil }
                    continue
                }
                let skip = min(bodyBytesLeft, count - index)
                index += skip
                bodyBytesLeft -= skip
                continue
            }
            let byte = bytes[index]
            index += 1
            if headerBytesSeen == 0 {
                type = byte
            } else {
                length = length << 8 | UInt32(byte)
            }
            headerBytesSeen += 1
            guard headerBytesSeen == 5 else { continue }
            guard Self.isKnownType(type), length >= 4, length < 1 << 30, type != 0x5A || length == 5 else {
                isLost = true
                return seen
            }
            bodyBytesLeft = Int(length) - 4
            wantsStatus = type == 0x5A  // Z
            if type == 0x43 || type == 0x49 || type == 0x45 { seen.awaitingReady = true }  // C, I, E
            rollbackBytesMatched = type == 0x43 && bodyBytesLeft == Self.rollbackTag.count ? 0 : nil  // C
            headerBytesSeen = 0
            length = 0
        }
        return seen
    }
}
