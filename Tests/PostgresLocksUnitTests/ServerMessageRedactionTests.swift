@testable import PostgresLocks
import Testing

@Suite("Server messages keep their words and withhold the caller's values")
struct ServerMessageRedactionTests {
    @Test(arguments: [
        ("22P02", #"invalid input syntax for type integer: "4111 1111 1111 1111""#, #"invalid input syntax for type integer: "…""#),
        ("22003", #"value "99999999999" is out of range for type integer"#, #"value "…" is out of range for type integer"#),
        ("22P02", #"invalid input value for enum mood: "secret""#, #"invalid input value for enum mood: "…""#),
        ("22021", #"invalid byte sequence for encoding "UTF8": 0xc3 0x28"#, #"invalid byte sequence for encoding "…": …"#),
        ("22007", #"invalid input syntax for type timestamp: "unterminated"#, #"invalid input syntax for type timestamp: "…""#),
        ("22P02", "invalid input syntax for type json", "invalid input syntax for type json"),
    ])
    func dataExceptionsWithholdQuotedValues(state: String, message: String, expected: String) {
        #expect(ServerMessageRedaction.redacting(message, sqlState: state) == expected)
    }

    @Test func otherClassesKeepTheNamesTheyQuote() {
        let message = #"duplicate key value violates unique constraint "orders_pkey""#
        #expect(ServerMessageRedaction.redacting(message, sqlState: "23505") == message)
        let missing = #"relation "orders" does not exist"#
        #expect(ServerMessageRedaction.redacting(missing, sqlState: "42P01") == missing)
    }
}
