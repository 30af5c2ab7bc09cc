/// A validated SQL identifier (table, schema, column or channel name), and the one place where
/// identifiers are turned into SQL text.
///
/// Values are always bound as parameters; only identifiers can never be bound, so every
/// identifier the library puts into SQL passes through ``init(_:)`` and ``quoted``.
/// The rules are deliberately strict: an ASCII letter or underscore, then ASCII letters,
/// digits or underscores, at most 63 bytes (PostgreSQL's `NAMEDATALEN - 1`). Quotes,
/// semicolons, spaces, NUL and anything else are rejected with
/// ``PostgresLocksError/Code/invalidArgument``, so a hostile name never reaches the server.
public struct SQLIdentifier: Sendable, Hashable, CustomStringConvertible {
    /// The identifier as given (case is preserved: it is always quoted).
    public let name: String

    /// The longest identifier PostgreSQL keeps without truncating it.
    public static let maximumLength = 63

    /// Validates `name`.
    /// - Throws: ``PostgresLocksError`` with code `invalidArgument`, naming what is wrong.
    public init(_ name: String) throws(PostgresLocksError) {
        try Self.validate(name)
        self.name = name
    }

    /// The identifier in double quotes, ready to be placed into SQL text.
    public var quoted: String { "\"\(name)\"" }

    public var description: String { quoted }

    /// Checks `name` against the identifier rules without creating an identifier.
    public static func validate(_ name: String) throws(PostgresLocksError) {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty else {
            throw .invalidArgument("identifier is empty")
        }
        guard bytes.count <= maximumLength else {
            throw .invalidArgument("identifier is \(bytes.count) bytes long; PostgreSQL allows at most \(maximumLength)")
        }
        for (index, byte) in bytes.enumerated() {
            let isLetter = (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F
            let isDigit = byte >= 0x30 && byte <= 0x39
            if isLetter || (isDigit && index > 0) { continue }
            let shown: String
            switch byte {
            case 0: shown = "NUL"
            case 0x20...0x7E: shown = "'\(Character(Unicode.Scalar(byte)))'"
            default: shown = "byte 0x\(String(byte, radix: 16))"
            }
            let position = index == 0 && isDigit ? "cannot start with a digit" : "contains \(shown) at byte \(index)"
            throw .invalidArgument("identifier \(position); use ASCII letters, digits and underscores only")
        }
    }
}

/// A table or other object name, optionally qualified by a schema.
public struct QualifiedName: Sendable, Hashable, CustomStringConvertible {
    /// The schema, if the name is qualified.
    public let schema: SQLIdentifier?
    /// The object's own name.
    public let name: SQLIdentifier

    /// Creates a name from already validated parts.
    public init(schema: SQLIdentifier? = nil, name: SQLIdentifier) {
        self.schema = schema
        self.name = name
    }

    /// Validates and creates a name from strings.
    public init(schema: String? = nil, _ name: String) throws(PostgresLocksError) {
        self.schema = try schema.map { (s) throws(PostgresLocksError) in try SQLIdentifier(s) }
        self.name = try SQLIdentifier(name)
    }

    /// The name as `schema.name` (or `name`) without quotes, for keys and messages.
    public var unquotedText: String {
        schema.map { "\($0.name).\(name.name)" } ?? name.name
    }

    /// The quoted, dot-joined name, ready to be placed into SQL text.
    public var quoted: String {
        if let schema { return "\(schema.quoted).\(name.quoted)" }
        return name.quoted
    }

    public var description: String { quoted }
}

import PostgresNIO

extension PostgresQuery.StringInterpolation {
    /// Inserts a validated identifier, quoted: `"SELECT * FROM \(identifier: table)"`.
    public mutating func appendInterpolation(identifier: SQLIdentifier) {
        appendInterpolation(unescaped: identifier.quoted)
    }

    /// Inserts a validated, optionally schema-qualified name, quoted.
    public mutating func appendInterpolation(identifier: QualifiedName) {
        appendInterpolation(unescaped: identifier.quoted)
    }
}
