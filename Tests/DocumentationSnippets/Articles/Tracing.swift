// The Swift blocks of the DocC article Tracing.md that use the libraries alone; the swift-otel
// block is in Examples/VaporService/Sources/VaporService/TraceExport.swift.
import Logging
import PostgresLocks
import PostgresNIO
import PostgresQueue
import Tracing

func articleTracing(client: PostgresClient, counter: GaplessCounter, queue: JobQueue, tenant: String, logger: Logger) async throws {
    // Your span; the library's spans are its children.
    try await withSpan("POST /tenants/{tenant}/invoices", ofKind: .server) { _ in
        try await client.withRetryingTransaction(logger: logger) { tx in
            let number = try await counter.next(scope: tenant, in: tx)
            try await queue.enqueue(try NewJob(kind: "send-invoice", payload: number), in: tx)
        }
    }
}
