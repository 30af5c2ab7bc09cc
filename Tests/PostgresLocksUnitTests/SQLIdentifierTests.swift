import PostgresLocks
import Testing

@Suite("SQL identifiers")
struct SQLIdentifierTests {
    @Test(arguments: ["jobs", "_private", "Tenant_Versions2", String(repeating: "a", count: 63)])
    func validNamesAreQuoted(name: String) throws {
        let identifier = try SQLIdentifier(name)
        #expect(identifier.quoted == "\"\(name)\"")
    }

    @Test(arguments: [
        "", "has space", "semi;colon", "quo\"te", "single'quote", "nul\u{0}byte", "1starts_with_digit",
        String(repeating: "a", count: 64), "dash-ed", "dot.ted", "ünïcode", "new\nline", "drop table x; --",
    ])
    func hostileOrInvalidNamesAreRejected(name: String) {
        let error = #expect(throws: PostgresLocksError.self) { try SQLIdentifier(name) }
        #expect(error?.code == .invalidArgument)
    }

    @Test func qualifiedNamesQuoteEachPart() throws {
        #expect(try QualifiedName(schema: "queue", "jobs").quoted == "\"queue\".\"jobs\"")
        #expect(try QualifiedName("jobs").quoted == "\"jobs\"")
        #expect(throws: PostgresLocksError.self) { try QualifiedName(schema: "bad;schema", "jobs") }
    }
}
