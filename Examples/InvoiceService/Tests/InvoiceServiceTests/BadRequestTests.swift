import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresLocks
import PostgresNIO
import Testing
@testable import InvoiceService

/// Refused requests answer 400 with a message and write nothing: no invoice, no job, and no
/// number taken from the tenant's series.
@Suite(.enabled(if: TestDatabase.isConfigured, "set DATABASE_URL to run the database tests"))
struct BadRequestTests {
    @Test func invalidRequestsAnswer400AndWriteNothing() async throws {
        let backend = try TestDatabase.makeBackend()
        let app = try backend.makeApplication()
        let tenant = TestDatabase.uniqueTenant("refused")
        let longTenant = tenant + String(repeating: "x", count: Tenant.maximumLength)
        let valid = #"{"customer": "Globex", "amountCents": 1234}"#
        let refused: [(uri: String, body: String)] = [
            ("/tenants/\(tenant)/invoices", "not json"),
            ("/tenants/\(tenant)/invoices", ""),
            ("/tenants/\(tenant)/invoices", #"{"customer": "Globex"}"#),
            ("/tenants/\(tenant)/invoices", #"{"customer": "Globex", "amountCents": -1}"#),
            ("/tenants/\(tenant)/invoices", #"{"customer": "", "amountCents": 5}"#),
            ("/tenants/\(longTenant)/invoices", valid),
            ("/tenants/bad%20tenant/invoices", valid),
        ]

        try await app.test(.router) { client in
            for request in refused {
                let response = try await client.execute(
                    uri: request.uri, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: request.body)
                )
                #expect(response.status == .badRequest, "\(request.uri) \(request.body)")
                let message = String(buffer: response.body)
                #expect(message.contains(#""message""#), "a readable message: \(message)")
            }
            for query in ["limit=0", "limit=1001", "after=-1", "after=x"] {
                let response = try await client.execute(uri: "/tenants/\(tenant)/invoices?\(query)", method: .get)
                #expect(response.status == .badRequest, "GET ?\(query)")
            }

            // Nothing was written for either tenant name.
            let names = [tenant, longTenant]
            let written = try await backend.client.checkedQuery("""
                SELECT (SELECT count(*) FROM \(identifier: backend.store.table) WHERE tenant = ANY(\(names)))::int8,
                       (SELECT count(*) FROM \(identifier: backend.counter.table) WHERE scope = ANY(\(names)))::int8,
                       (SELECT count(*) FROM \(identifier: backend.queue.allJobsView) WHERE payload->>'tenant' = ANY(\(names)))::int8
                """, logger: backend.logger).rows[0].decode((Int64, Int64, Int64).self)
            #expect(written == (0, 0, 0))

            // The tenant's first accepted invoice is still number 1.
            let accepted = try await client.execute(
                uri: "/tenants/\(tenant)/invoices", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: valid)
            )
            #expect(accepted.status == .created)
            let created = try JSONDecoder().decode(CreatedInvoice.self, from: Data(accepted.body.readableBytesView))
            #expect(created == CreatedInvoice(tenant: tenant, number: 1))
        }
    }

    @Test func healthAnswers200WhenTheDatabaseAnswers() async throws {
        let backend = try TestDatabase.makeBackend()
        try await backend.makeApplication().test(.router) { client in
            let response = try await client.execute(uri: "/health", method: .get)
            #expect(response.status == .ok)
        }
    }
}
