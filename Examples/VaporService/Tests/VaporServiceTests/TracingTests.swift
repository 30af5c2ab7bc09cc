import Fluent
import Foundation
import InMemoryTracing
import PostgresLocks
import Testing
import Tracing
import Vapor
import VaporTesting
@testable import VaporService

/// With a tracer bootstrapped, a request's trace shows the library's work and the job it
/// caused: the gapless number under the request's span, and the job's run continuing the trace
/// from the context stored with the job.
@Suite("Tracing a request and the job it caused")
struct TracingTests {
    /// The process's tracer (one bootstrap per process).
    static let tracer: InMemoryTracer = {
        let tracer = InMemoryTracer()
        InstrumentationSystem.bootstrap(tracer)
        return tracer
    }()

    @Test func aRequestsTraceShowsItsNumberAndTheJobItCaused() async throws {
        let tracer = Self.tracer
        try await withService { app in
            var body = ByteBuffer()
            body.writeString(#"{"title": "traced"}"#)
            let response = try await app.testing().performTest(request: TestingHTTPRequest(
                method: .POST, url: URI(path: "/tenants/traced-tenant/documents"), headers: ["Content-Type": "application/json"], body: body
            ))
            #expect(response.status == .created)
            // This request's number (other tests' requests run at the same time).
            let number = try #require(tracer.finishedSpans.first {
                $0.operationName == "pglocks.gapless_number" && $0.attributes.get("pglocks.counter.scope") == .string("traced-tenant")
            })
            try await waitUntil("the job's run has ended") {
                tracer.finishedSpans.contains { $0.operationName == "pglocks.job" && $0.traceID == number.traceID }
            }
            let spans = tracer.finishedSpans.filter { $0.traceID == number.traceID }
            let request = try #require(spans.first { $0.operationName == "POST /tenants/:tenant/documents" })
            let enqueue = try #require(spans.first { $0.operationName == "pglocks.enqueue" })
            let run = try #require(spans.first { $0.operationName == "pglocks.job" })
            #expect(request.parentSpanID == nil)
            #expect(spans.filter { $0.operationName == "pglocks.gapless_number" }.count == 1)
            #expect(run.parentSpanID == enqueue.spanID)
            #expect(run.attributes.get("pglocks.job.kind") == .string("index-document"))
            #expect(run.attributes.get("pglocks.job.outcome") == .string("completed"))
        }
    }
}
