import Foundation

/// The body of `POST /tenants/{tenant}/invoices`: `{"customer": "…", "amountCents": 1234}`,
/// validated.
struct NewInvoice: Sendable, Hashable, Codable {
    /// The longest customer name, in characters.
    static let maximumCustomerLength = 200

    /// Who is billed (1 to 200 characters).
    let customer: String
    /// The amount in cents (zero or more).
    let amountCents: Int64

    /// Validates the fields.
    ///
    /// - Throws: ``InvalidInput`` for an empty, over-long or NUL-containing customer, or a
    ///   negative amount.
    init(customer: String, amountCents: Int64) throws(InvalidInput) {
        let trimmed = customer.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw InvalidInput("customer is empty") }
        guard trimmed.count <= Self.maximumCustomerLength else {
            throw InvalidInput("customer is \(trimmed.count) characters long; at most \(Self.maximumCustomerLength)")
        }
        // PostgreSQL text cannot hold NUL.
        guard !trimmed.unicodeScalars.contains(where: { $0.value == 0 }) else {
            throw InvalidInput("customer contains a NUL character")
        }
        guard amountCents >= 0 else { throw InvalidInput("amountCents must not be negative; found \(amountCents)") }
        self.customer = trimmed
        self.amountCents = amountCents
    }

    /// Decodes and validates a JSON body.
    ///
    /// - Throws: ``InvalidInput`` when the body is not a JSON object with a string `customer`
    ///   and an integer `amountCents`, or when a field is invalid.
    static func decode(json: Data) throws(InvalidInput) -> NewInvoice {
        let body: Body
        do {
            body = try JSONDecoder().decode(Body.self, from: json)
        } catch let error as DecodingError {
            throw InvalidInput("the body is not a valid invoice: \(Self.explain(error))")
        } catch {
            throw InvalidInput("the body is not valid JSON")
        }
        return try NewInvoice(customer: body.customer, amountCents: body.amountCents)
    }

    private struct Body: Decodable {
        var customer: String
        var amountCents: Int64
    }

    private static func explain(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, _):
            return "\(key.stringValue) is missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            return field.isEmpty ? "expected a JSON object" : "\(field) has the wrong type"
        case .dataCorrupted(let context):
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            return field.isEmpty ? "malformed JSON" : "\(field) is not valid"
        @unknown default:
            return "malformed JSON"
        }
    }
}
