/// A tenant's name as it appears in `/tenants/{tenant}/…`: 1 to 64 ASCII letters, digits,
/// `-`, `_` or `.`. Each tenant has its own gapless invoice series.
struct Tenant: Sendable, Hashable, CustomStringConvertible {
    /// The longest tenant name, in characters.
    static let maximumLength = 64

    /// The validated name (also the counter's scope).
    let name: String

    /// Validates `name`.
    ///
    /// - Throws: ``InvalidInput`` for an empty or over-long name, or one with other characters.
    init(_ name: String) throws(InvalidInput) {
        guard !name.isEmpty else { throw InvalidInput("the tenant is empty") }
        guard name.utf8.count <= Self.maximumLength else {
            throw InvalidInput("the tenant is \(name.utf8.count) characters long; at most \(Self.maximumLength)")
        }
        guard name.utf8.allSatisfy(Self.isAllowed) else {
            throw InvalidInput("the tenant may contain only ASCII letters, digits, '-', '_' and '.'")
        }
        self.name = name
    }

    var description: String { name }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
            return true
        default:
            return false
        }
    }
}
