extension LockKey: CustomStringConvertible {
    /// The longest key text, in UTF-8 bytes, that ``init(text:scheme:)`` and
    /// ``named(_:scheme:)`` accept.
    public static let maximumTextLength = 1024

    /// The key's text form: the decimal bigint (`"-42"`) or `"NAMESPACE:ID"` with both as
    /// signed decimals (`"1:12345"`, `"-5:7"`).
    ///
    /// A hashed key shows its number: hashing is one-way. ``init(text:scheme:)`` reads
    /// every description back to the same key.
    public var description: String {
        switch storage {
        case .int64(let value): "\(value)"
        case .pair(let namespace, let id): "\(namespace):\(id)"
        }
    }

    /// Reads a key from text, as given on a command line or in configuration.
    ///
    /// - an optionally signed decimal integer that fits in `Int64` is a bigint key:
    ///   `"42"`, `"-9223372036854775808"`;
    /// - two such integers that fit in `Int32`, joined by one colon, are a pair key:
    ///   `"1:12345"`, `"-1:-2"`;
    /// - any other text is a name, hashed with `scheme`: `"tenant-a"`,
    ///   `"payment:order-123"` (`order-123` is not an integer).
    ///
    /// Text that looks like one of the numeric forms but does not fit is rejected rather than
    /// hashed, so a typo cannot silently become a different lock.
    ///
    /// - Throws: ``PostgresLocksError`` with code `invalidArgument` when the text is empty,
    ///   longer than ``maximumTextLength`` UTF-8 bytes, starts or ends with whitespace,
    ///   contains a control character (NUL included), is an integer outside the `Int64`
    ///   range, or is `NAMESPACE:ID` with a part outside the `Int32` range.
    public init(text: String, scheme: HashScheme = .md5FirstEightBytes) throws(PostgresLocksError) {
        switch try Self.parse(text) {
        case .key(let key): self = key
        case .name: self = .hashed(text, scheme: scheme)
        }
    }

    /// The key for text in one of the two numeric forms, or nil for anything else (names
    /// included: they are not hashed here).
    init?(numericText text: String) {
        guard case .key(let key)? = try? Self.parse(text) else { return nil }
        self = key
    }

    /// What a key text turned out to be.
    enum ParsedText {
        /// One of the numeric forms.
        case key(LockKey)
        /// A name, to be hashed.
        case name
    }

    /// Validates `text` and tells a numeric key from a name.
    static func parse(_ text: String) throws(PostgresLocksError) -> ParsedText {
        let length = text.utf8.count
        guard length > 0 else {
            throw .invalidArgument("lock key text is empty")
        }
        guard length <= maximumTextLength else {
            throw .invalidArgument("lock key text is \(length) bytes long; at most \(maximumTextLength) are allowed")
        }
        var offset = 0
        for scalar in text.unicodeScalars {
            if scalar.properties.generalCategory == .control {
                let name = scalar.value == 0 ? "NUL" : "control character U+\(hex4(scalar.value))"
                throw .invalidArgument("lock key text contains \(name) at byte \(offset)")
            }
            offset += UTF8.width(scalar)
        }
        if let first = text.unicodeScalars.first, first.properties.isWhitespace {
            throw .invalidArgument("lock key text \(preview(text)) starts with whitespace")
        }
        if let last = text.unicodeScalars.last, last.properties.isWhitespace {
            throw .invalidArgument("lock key text \(preview(text)) ends with whitespace")
        }

        let bytes = Array(text.utf8)
        if isDecimalInteger(bytes[...]) {
            guard let value = Int64(text) else {
                throw .invalidArgument("lock key \(preview(text)) is outside the bigint range \(Int64.min)...\(Int64.max)")
            }
            return .key(.int64(value))
        }
        let colon = UInt8(ascii: ":")
        if let split = bytes.firstIndex(of: colon), !bytes[(split + 1)...].contains(colon) {
            let namespaceBytes = bytes[..<split]
            let idBytes = bytes[(split + 1)...]
            if isDecimalInteger(namespaceBytes), isDecimalInteger(idBytes) {
                guard let namespace = Int32(String(decoding: namespaceBytes, as: UTF8.self)),
                      let id = Int32(String(decoding: idBytes, as: UTF8.self))
                else {
                    throw .invalidArgument("lock key \(preview(text)) has a namespace or id outside the int range \(Int32.min)...\(Int32.max)")
                }
                return .key(.pair(namespace: namespace, id: id))
            }
        }
        return .name
    }

    /// Whether `bytes` is an optional `+` or `-` followed by one or more ASCII digits.
    private static func isDecimalInteger(_ bytes: ArraySlice<UInt8>) -> Bool {
        var digits = bytes[...]
        if let sign = digits.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            digits = digits.dropFirst()
        }
        return !digits.isEmpty && digits.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// The text quoted for an error message, shortened if it is long.
    private static func preview(_ text: String) -> String {
        let limit = 64
        guard text.count > limit else { return String(reflecting: text) }
        return String(reflecting: String(text.prefix(limit))) + "…"
    }

    private static func hex4(_ value: UInt32) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
