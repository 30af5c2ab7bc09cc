/// Withholds the values a server message quotes back.
///
/// PostgreSQL's data exceptions (SQLSTATE class 22) quote the offending input in the message
/// itself: `invalid input syntax for type integer: "4111 1111 1111 1111"`, `value "…" is out of
/// range for type integer`, `invalid byte sequence for encoding "UTF8": 0xc3 0x28`. That input is
/// the caller's data (a bound value), and error descriptions end up in logs and HTTP responses,
/// so ``PostgresLocksError`` keeps the message's words and withholds its quoted values. The
/// other classes name objects (tables, constraints, types), which stay; their values travel in
/// the DETAIL field, which the library never copies into a description.
enum ServerMessageRedaction {
    /// What stands in for a withheld value.
    static let placeholder = "\"…\""

    /// `message` with its quoted values withheld when `sqlState` is a data exception.
    static func redacting(_ message: String, sqlState: String) -> String {
        guard sqlState.hasPrefix("22") else { return message }
        var result = ""
        result.reserveCapacity(message.count)
        var inQuote = false
        for character in message {
            if character == "\"" {
                if inQuote { result += placeholder }
                inQuote.toggle()
            } else if !inQuote {
                result.append(character)
            }
        }
        if inQuote { result += placeholder }  // an unterminated quote: withhold the rest
        return withholdingTrailingBytes(result)
    }

    /// Withholds a trailing run of hex bytes (`… "UTF8": 0xc3 0x28`): the input's own bytes.
    private static func withholdingTrailingBytes(_ message: String) -> String {
        var words = message.split(separator: " ", omittingEmptySubsequences: false)
        var withheld = false
        while let last = words.last, isHexByte(last) {
            words.removeLast()
            withheld = true
        }
        guard withheld else { return message }
        return words.joined(separator: " ") + " …"
    }

    private static func isHexByte(_ word: Substring) -> Bool {
        word.count == 4 && word.hasPrefix("0x") && word.dropFirst(2).allSatisfy(\.isHexDigit)
    }
}
