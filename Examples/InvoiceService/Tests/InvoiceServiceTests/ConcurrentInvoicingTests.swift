import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresLocks
import PostgresNIO
import Testing
@testable import InvoiceService

/// Many concurrent `POST`s against the real database: every tenant's numbers run 1…n with no
/// gap and no duplicate, and every `send-invoice` job enqueued with them completes.
@Suite(.enabled(if: TestDatabase.isConfigured, "set DATABASE_URL to run the database tests"))
struct ConcurrentInvoicingTests {
    @Test func concurrentInvoicesGetGaplessNumbersPerTenantAndEveryJobCompletes() async throws {
        let backend = try TestDatabase.makeBackend()
        let app = try backend.makeApplication()
        let tenants = ["acme", "globex", "initech"].map(TestDatabase.uniqueTenant)
        let total = 200

        try await app.test(.router) { client in
            // 200 requests at once, spread over three tenants.
            let created = try await withThrowingTaskGroup(of: CreatedInvoice.self) { group in
                for index in 0..<total {
                    let tenant = tenants[index % tenants.count]
                    group.addTask {
                        let body = ByteBuffer(string: #"{"customer": "customer \#(index)", "amountCents": \#(100 + index)}"#)
                        let response = try await client.execute(
                            uri: "/tenants/\(tenant)/invoices", method: .post,
                            headers: [.contentType: "application/json"], body: body
                        )
                        guard response.status == .created else {
                            throw TestFailure("POST \(index) answered \(response.status): \(String(buffer: response.body))")
                        }
                        return try JSONDecoder().decode(CreatedInvoice.self, from: Data(response.body.readableBytesView))
                    }
                }
                return try await group.reduce(into: [CreatedInvoice]()) { $0.append($1) }
            }
            #expect(created.count == total)

            // The numbers handed out: 1…n per tenant, each once.
            let byTenant = Dictionary(grouping: created, by: \.tenant).mapValues { $0.map(\.number).sorted() }
            #expect(Set(byTenant.keys) == Set(tenants))
            for (offset, tenant) in tenants.enumerated() {
                let expected = total / tenants.count + (offset < total % tenants.count ? 1 : 0)
                #expect(byTenant[tenant] == Array(1...Int64(expected)), "tenant \(tenant)")

                // The list endpoint agrees.
                let response = try await client.execute(uri: "/tenants/\(tenant)/invoices?limit=1000", method: .get)
                #expect(response.status == .ok)
                let list = try JSONDecoder().decode(InvoiceList.self, from: Data(response.body.readableBytesView))
                #expect(list.invoices.map(\.number) == Array(1...Int64(expected)), "tenant \(tenant)")
            }

            // The database agrees: rows 1…n per tenant, and the counter stopped at n.
            let rows = try await backend.client.checkedQuery("""
                SELECT i.tenant, count(*)::int8, count(DISTINCT i.number)::int8, min(i.number), max(i.number), max(c.value)
                FROM \(identifier: backend.store.table) i
                JOIN \(identifier: backend.counter.table) c ON c.scope = i.tenant
                WHERE i.tenant = ANY(\(tenants))
                GROUP BY i.tenant
                """, logger: backend.logger).rows
            #expect(rows.count == tenants.count)
            for row in rows {
                let (tenant, count, distinct, low, high, counter) = try row.decode((String, Int64, Int64, Int64, Int64, Int64).self)
                #expect(count == distinct && low == 1 && high == count && counter == count, "tenant \(tenant)")
            }

            // Every invoice's job completes, and marks its invoice sent in the same transaction.
            try await waitUntil("every send-invoice job of the run completed") {
                let counts = try await backend.client.checkedQuery("""
                    SELECT count(*) FILTER (WHERE state = 'completed')::int8, count(*)::int8
                    FROM \(identifier: backend.queue.allJobsView)
                    WHERE kind = \(SendInvoiceJob.kind) AND payload->>'tenant' = ANY(\(tenants))
                    """, logger: backend.logger).rows[0].decode((Int64, Int64).self)
                #expect(counts.1 == Int64(total), "one job per invoice")
                return counts.0 == Int64(total)
            }
            let unsent = try await backend.client.checkedQuery("""
                SELECT count(*)::int8 FROM \(identifier: backend.store.table)
                WHERE tenant = ANY(\(tenants)) AND sent_at IS NULL
                """, logger: backend.logger).rows[0].decode(Int64.self)
            #expect(unsent == 0)
        }
    }
}
