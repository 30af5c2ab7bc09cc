import Foundation
import Hummingbird
import Logging
import PostgresLocks
import PostgresNIO
import PostgresQueue

/// The HTTP endpoints:
/// - `POST /tenants/{tenant}/invoices` creates an invoice with the tenant's next gapless number
///   and enqueues its `send-invoice` job, both in one transaction (201 `{"tenant", "number"}`);
/// - `GET /tenants/{tenant}/invoices?after=0&limit=100` lists invoices in number order;
/// - `GET /health` answers 200 when the database answers.
///
/// Invalid input is refused with 400 before anything is written.
struct InvoiceRoutes: Sendable {
    /// The most invoices one list returns.
    static let maximumListLimit = 1000
    /// The largest request body accepted.
    static let maximumBodySize = 16 * 1024

    let client: PostgresClient
    let counter: GaplessCounter
    let queue: JobQueue
    let store: InvoiceStore

    /// Adds the routes to `router`.
    func add(to router: Router<some RequestContext>) {
        router.post("/tenants/{tenant}/invoices") { request, context in
            try await create(request: request, context: context)
        }
        router.get("/tenants/{tenant}/invoices") { request, context in
            try await list(request: request, context: context)
        }
        router.get("/health") { _, context in
            try await health(context: context)
        }
    }

    func create(request: Request, context: some RequestContext) async throws -> EditedResponse<CreatedInvoice> {
        let tenant = try Tenant(context.parameters.get("tenant") ?? "")
        // A bigger body throws NIOTooManyBytesError, which Hummingbird answers with 413.
        let body = try await request.body.collect(upTo: Self.maximumBodySize)
        let invoice = try NewInvoice.decode(json: Data(body.readableBytesView))

        // One checked transaction: the number, the invoice and its job commit together or not
        // at all (a rollback gives the number back, so the series keeps no gap).
        let number = try await counter.withNextNumber(scope: tenant.name, on: client, logger: context.logger) { number, tx in
            try await store.insert(invoice, tenant: tenant, number: number, in: tx)
            try await queue.enqueue(SendInvoiceJob(tenant: tenant.name, number: number).newJob(), in: tx)
            return number
        }
        context.logger.info("invoice created", metadata: ["tenant": "\(tenant)", "number": "\(number)"])
        return EditedResponse(status: .created, response: CreatedInvoice(tenant: tenant.name, number: number))
    }

    func list(request: Request, context: some RequestContext) async throws -> InvoiceList {
        let tenant = try Tenant(context.parameters.get("tenant") ?? "")
        let query = request.uri.queryParameters
        let after = try Self.integer(query.get("after"), name: "after", default: 0, range: 0...Int64.max)
        let limit = try Self.integer(query.get("limit"), name: "limit", default: 100, range: 1...Int64(Self.maximumListLimit))
        let items = try await store.list(tenant: tenant, after: after, limit: Int(limit), on: client, logger: context.logger)
        return InvoiceList(tenant: tenant.name, invoices: items)
    }

    func health(context: some RequestContext) async throws -> HTTPResponse.Status {
        _ = try await client.checkedQuery("SELECT 1", logger: context.logger)
        return .ok
    }

    private static func integer(_ text: String?, name: String, default value: Int64, range: ClosedRange<Int64>) throws(InvalidInput) -> Int64 {
        guard let text else { return value }
        guard let number = Int64(text), range.contains(number) else {
            throw InvalidInput("\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound); found '\(text)'")
        }
        return number
    }
}
