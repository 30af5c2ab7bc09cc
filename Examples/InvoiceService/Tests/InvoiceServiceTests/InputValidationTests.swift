import Foundation
import Testing
@testable import InvoiceService

/// The checks that run before anything reaches the database (no database needed).
@Suite struct InputValidationTests {
    @Test func tenantNamesOfLettersDigitsAndPunctuationAreAccepted() throws {
        #expect(try Tenant("acme").name == "acme")
        #expect(try Tenant("Acme_Corp-2026.eu").name == "Acme_Corp-2026.eu")
        #expect(try Tenant(String(repeating: "x", count: Tenant.maximumLength)).name.count == Tenant.maximumLength)
    }

    @Test(arguments: ["", String(repeating: "x", count: Tenant.maximumLength + 1), "acme corp", "acme/eu", "a%2Fb", "ünïcode", "tab\there"])
    func badTenantNamesAreRefused(_ name: String) {
        #expect(throws: InvalidInput.self) { try Tenant(name) }
    }

    @Test func aWellFormedBodyDecodes() throws {
        let invoice = try NewInvoice.decode(json: Data(#"{"customer": "  Globex  ", "amountCents": 1234}"#.utf8))
        #expect(invoice == (try NewInvoice(customer: "Globex", amountCents: 1234)))
    }

    @Test(arguments: [
        "",
        "not json",
        "[]",
        #"{"customer": "Globex"}"#,
        #"{"amountCents": 5}"#,
        #"{"customer": 7, "amountCents": 5}"#,
        #"{"customer": "Globex", "amountCents": "5"}"#,
        #"{"customer": "Globex", "amountCents": 1.5}"#,
        #"{"customer": "Globex", "amountCents": -1}"#,
        #"{"customer": "   ", "amountCents": 5}"#,
    ])
    func badBodiesAreRefused(_ json: String) {
        #expect(throws: InvalidInput.self) { try NewInvoice.decode(json: Data(json.utf8)) }
    }

    @Test func overLongCustomersAreRefused() {
        let customer = String(repeating: "c", count: NewInvoice.maximumCustomerLength + 1)
        #expect(throws: InvalidInput.self) { try NewInvoice(customer: customer, amountCents: 1) }
    }
}
