import Foundation
import Hummingbird

/// The answer to `POST /tenants/{tenant}/invoices` (status 201): the invoice's number in
/// its tenant's series.
struct CreatedInvoice: ResponseCodable, Hashable {
    /// The tenant.
    var tenant: String
    /// The gapless number given to the invoice.
    var number: Int64
}

/// The answer to `GET /tenants/{tenant}/invoices`: invoices in number order.
struct InvoiceList: ResponseCodable, Hashable {
    /// One invoice as listed.
    struct Item: Codable, Hashable, Sendable {
        /// Its number.
        var number: Int64
        /// Who is billed.
        var customer: String
        /// The amount in cents.
        var amountCents: Int64
        /// Whether the `send-invoice` job has run for it.
        var sent: Bool
    }

    /// The tenant.
    var tenant: String
    /// The invoices with numbers above the request's `after`, at most its `limit`.
    var invoices: [Item]
}
