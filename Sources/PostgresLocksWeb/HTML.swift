/// A piece of HTML, safe by construction: text interpolated into it is escaped, and only other
/// `HTML` values are inserted as they are.
///
/// ```swift
/// let cell: HTML = "<td>\(job.lastError ?? "")</td>"   // the error text is escaped
/// ```
public struct HTML: Sendable, Hashable, ExpressibleByStringInterpolation, CustomStringConvertible {
    /// The markup.
    public private(set) var markup: String

    /// Markup written in the source (a literal): taken as it is.
    public init(stringLiteral value: String) { markup = value }

    /// Markup built by interpolation.
    public init(stringInterpolation: Interpolation) { markup = stringInterpolation.markup }

    /// Nothing.
    public static let empty: HTML = ""

    /// The markup.
    public var description: String { markup }

    /// Joins pieces.
    public static func joined(_ pieces: [HTML], separator: HTML = "") -> HTML {
        var result = HTML.empty
        for (index, piece) in pieces.enumerated() {
            if index > 0 { result.markup += separator.markup }
            result.markup += piece.markup
        }
        return result
    }

    /// Two pieces one after the other.
    public static func + (lhs: HTML, rhs: HTML) -> HTML {
        var result = lhs
        result.markup += rhs.markup
        return result
    }

    /// Appends another piece.
    public static func += (lhs: inout HTML, rhs: HTML) { lhs.markup += rhs.markup }

    /// Escapes text for an element's content or a quoted attribute value.
    public static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default:
                // Control characters other than tab and newline are shown as a replacement.
                if character.value < 0x20 && character != "\n" && character != "\t" || character.value == 0x7F {
                    escaped += "\u{FFFD}"
                } else {
                    escaped.unicodeScalars.append(character)
                }
            }
        }
        return escaped
    }

    /// Builds `HTML` from a literal with interpolations.
    public struct Interpolation: StringInterpolationProtocol {
        var markup = ""

        /// Reserves room.
        public init(literalCapacity: Int, interpolationCount: Int) { markup.reserveCapacity(literalCapacity * 2) }

        /// A literal part: markup.
        public mutating func appendLiteral(_ literal: String) { markup += literal }

        /// Text: escaped.
        public mutating func appendInterpolation(_ text: String) { markup += HTML.escape(text) }

        /// Any value shown as text: escaped.
        public mutating func appendInterpolation<T: CustomStringConvertible>(_ value: T) { markup += HTML.escape(value.description) }

        /// Other HTML: inserted as it is.
        public mutating func appendInterpolation(_ html: HTML) { markup += html.markup }

        /// Several pieces of HTML.
        public mutating func appendInterpolation(_ pieces: [HTML]) { for piece in pieces { markup += piece.markup } }
    }
}
