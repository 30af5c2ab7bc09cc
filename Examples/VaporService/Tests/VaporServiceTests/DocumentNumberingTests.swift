import Fluent
import FluentPostgresDriver
import Foundation
import PostgresLocks
import PostgresLocksVapor
import PostgresNIO
import Testing
import Vapor
import VaporTesting
@testable import VaporService

/// Fluent models and the library in one transaction: the document row saved by Fluent and its
/// gapless number (and its job) allocated by the library commit together.
@Suite("Document numbering through Fluent transactions")
struct DocumentNumberingTests {
    private struct Created: Decodable {
        var tenant: String
        var number: Int64
    }

    private static func post(_ tester: any TestingApplicationTester, tenant: String, title: String) async throws -> TestingHTTPResponse {
        var body = ByteBuffer()
        body.writeString(#"{"title": "\#(title)"}"#)
        return try await tester.performTest(request: TestingHTTPRequest(
            method: .POST, url: URI(path: "/tenants/\(tenant)/documents"),
            headers: ["Content-Type": "application/json"], body: body
        ))
    }

    @Test func concurrentRequestsOverThreeTenantsGetNumbersOneToFiftyEachAndEveryJobRuns() async throws {
        try await withService { app in
            let tester = try app.testing()
            let tenants = ["acme", "globex", "initech"]
            let created = try await withThrowingTaskGroup(of: Created.self) { group in
                for index in 0..<150 {
                    group.addTask {
                        let response = try await Self.post(tester, tenant: tenants[index % 3], title: "document \(index)")
                        guard response.status == .created else {
                            throw TestFailure("request \(index) answered \(response.status): \(response.body.string)")
                        }
                        return try JSONDecoder().decode(Created.self, from: Data(response.body.readableBytesView))
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let numbers = Dictionary(grouping: created, by: \.tenant).mapValues { $0.map(\.number).sorted() }
            for tenant in tenants {
                #expect(numbers[tenant] == Array(1...50), "tenant \(tenant)")
            }
            // The database agrees: 50 rows per tenant numbered 1…50, and each counter at 50.
            let sql = try #require(app.db as? any SQLDatabase)
            struct Row: Decodable { var tenant: String; var rows: Int; var distinct: Int; var low: Int64; var high: Int64; var counter: Int64 }
            let rows = try await sql.raw("""
                SELECT d.tenant, count(*)::int AS rows, count(DISTINCT d.number)::int AS distinct, min(d.number) AS low,
                       max(d.number) AS high, max(c.value) AS counter
                FROM documents d JOIN document_numbers c ON c.scope = d.tenant GROUP BY d.tenant ORDER BY d.tenant
                """).all(decoding: Row.self)
            #expect(rows.map(\.tenant) == tenants)
            #expect(rows.allSatisfy { $0.rows == 50 && $0.distinct == 50 && $0.low == 1 && $0.high == 50 && $0.counter == 50 })
            // Every job enqueued with a document ran: the worker runs in the app's lifecycle.
            try await waitUntil("every document is indexed") {
                try await Document.query(on: app.db).filter(\.$indexedAt != nil).count() == 150
            }
        }
    }

    @Test func aRequestThatFailsAfterItsNumberWasAllocatedLeavesNoGapAndNoJob() async throws {
        try await withService { app in
            let tester = try app.testing()
            #expect(try await Self.post(tester, tenant: "acme", title: "Q1 report").status == .created)
            // The same title again: the number and the job are allocated, then Fluent's insert
            // hits the unique index and the transaction rolls back.
            let refused = try await Self.post(tester, tenant: "acme", title: "Q1 report")
            #expect(refused.status == .conflict)
            #expect(!refused.body.string.contains("duplicate key"))
            #expect(!refused.body.string.contains("INSERT"))
            let next = try await Self.post(tester, tenant: "acme", title: "Q2 report")
            #expect(next.status == .created)
            #expect(try JSONDecoder().decode(Created.self, from: Data(next.body.readableBytesView)).number == 2)
            let sql = try #require(app.db as? any SQLDatabase)
            struct Count: Decodable { var count: Int }
            let jobs = try await sql.raw("SELECT count(*)::int AS count FROM jobs.all_jobs WHERE kind = 'index-document'").first(decoding: Count.self)
            #expect(jobs?.count == 2)
        }
    }

    @Test func aSecondPublisherAtTheSameMomentGets503WithRetryAfterAndNoSQL() async throws {
        try await withService { app in
            let tester = try app.testing()
            #expect(try await Self.post(tester, tenant: "acme", title: "press release").status == .created)
            let key = try #require(LockKey.hashed("publish:acme:1").int64Value)
            // Another publisher holds the document's lock.
            try await app.postgresLocks.client.withConnection { connection in
                _ = try await connection.query("SELECT pg_advisory_lock(\(key))", logger: app.logger).collect()
                let busy = try await tester.performTest(request: TestingHTTPRequest(
                    method: .POST, url: URI(path: "/tenants/acme/documents/1/publish"), headers: [:], body: ByteBuffer()
                ))
                #expect(busy.status == .serviceUnavailable)
                #expect(busy.headers.first(name: "Retry-After") == "1")
                #expect(busy.body.string.contains("The resource is busy"))
                #expect(!busy.body.string.contains("pg_"))
                _ = try await connection.query("SELECT pg_advisory_unlock(\(key))", logger: app.logger).collect()
            }
            let published = try await tester.performTest(request: TestingHTTPRequest(
                method: .POST, url: URI(path: "/tenants/acme/documents/1/publish"), headers: [:], body: ByteBuffer()
            ))
            #expect(published.status == .noContent)
        }
    }
}

private extension ByteBuffer {
    var string: String { String(buffer: self) }
}
