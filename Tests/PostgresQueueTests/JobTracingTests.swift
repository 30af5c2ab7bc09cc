import InMemoryTracing
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import PostgresQueue
import Testing
import Tracing

/// A job carries the trace of the code that enqueued it: the enqueue is a producer span, the
/// job's metadata holds its context as a W3C `traceparent` (written by the tracer's
/// propagator), and the worker's span for the run continues that trace as its child.
@Suite("Job tracing")
struct JobTracingTests {
    @Test func aJobEnqueuedInATracedRequestRunsInASpanOfThatTrace() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try await makeQueue(db)
            let tracer = TestTracer.shared
            let trace = tracer.beginTrace("POST /documents")
            defer { tracer.forget(trace) }
            var handlers = JobHandlers()
            handlers.register("render") { (work: Work, _) in
                // The handler runs inside the job's span: its own spans are children of it.
                let span = startSpan("render pdf", context: ServiceContext.current ?? .topLevel, ofKind: .internal, at: DefaultTracerClock.now)
                span.attributes["n"] = work.n
                span.end()
            }
            let worker = try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: try fastConfiguration(db), logger: db.logger)
            try await withWorkers([worker], logger: db.logger) {
                try await ServiceContext.$current.withValue(trace.root.context) {
                    try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                        try await queue.enqueue(NewJob(kind: "render", payload: Work(n: 3)), in: tx)
                    }
                }
                trace.root.end()
                try await waitUntil("the job's span has ended") {
                    tracer.finishedSpans(of: trace).contains { $0.operationName == "pglocks.job" }
                }
            }
            let spans = tracer.finishedSpans(of: trace)
            let enqueue = try #require(spans.first { $0.operationName == "pglocks.enqueue" })
            let run = try #require(spans.first { $0.operationName == "pglocks.job" })
            let handlerSpan = try #require(spans.first { $0.operationName == "render pdf" })
            #expect(enqueue.kind == .producer)
            #expect(run.kind == .consumer)
            #expect(run.parentSpanID == enqueue.spanID)
            #expect(handlerSpan.parentSpanID == run.spanID)
            #expect(run.attributes.get("pglocks.job.kind") == .string("render"))
            #expect(run.attributes.get("pglocks.job.outcome") == .string("completed"))
            #expect(run.attributes.get("pglocks.job.attempt") == .int64(1))
            // What the database holds: the W3C trace context of the enqueue span.
            let stored = try await db.scalar("SELECT metadata->>'traceparent' FROM q.all_jobs", as: String.self)
            #expect(stored == "00-\(trace.traceID)-\(enqueue.spanID)-01")
        }
    }

    @Test func jobsEnqueuedByCopyCarryTheTraceToo() async throws {
        try await TestDatabase.withDatabase { db in
            let queue = try await makeQueue(db)
            let tracer = TestTracer.shared
            let trace = tracer.beginTrace("POST /imports")
            defer { tracer.forget(trace) }
            try await ServiceContext.$current.withValue(trace.root.context) {
                try await queue.enqueueByCopy((1...3).map { try NewJob(kind: "import", payload: Work(n: $0)) }, on: db.client, logger: db.logger)
            }
            trace.root.end()
            let enqueue = try #require(tracer.finishedSpans(of: trace).first { $0.operationName == "pglocks.enqueue" })
            #expect(enqueue.attributes.get("pglocks.enqueue.inserted") == .int64(3))
            let stored = try await db.query("SELECT metadata->>'traceparent' FROM q.all_jobs").map { try $0.decode(String.self) }
            #expect(stored == Array(repeating: "00-\(trace.traceID)-\(enqueue.spanID)-01", count: 3))
        }
    }

    @Test func aFailedRunRecordsItsErrorOnTheJobSpan() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            let queue = try await makeQueue(db)
            let tracer = TestTracer.shared
            let trace = tracer.beginTrace("POST /imports")
            defer { tracer.forget(trace) }
            struct Refused: Error {}
            var handlers = JobHandlers()
            handlers.register("import") { (_: Work, _) in throw Refused() }
            let worker = try QueueWorker(queue: queue, client: db.client, handlers: handlers, configuration: try fastConfiguration(db), logger: db.logger)
            try await withWorkers([worker], logger: db.logger) {
                try await ServiceContext.$current.withValue(trace.root.context) {
                    try await queue.enqueue(NewJob(kind: "import", payload: Work(n: 1), maxAttempts: 1), on: db.client, logger: db.logger)
                }
                trace.root.end()
                try await waitUntil("the job's span has ended") {
                    tracer.finishedSpans(of: trace).contains { $0.operationName == "pglocks.job" }
                }
            }
            let run = try #require(tracer.finishedSpans(of: trace).first { $0.operationName == "pglocks.job" })
            #expect(run.attributes.get("pglocks.job.outcome") == .string("failed"))
            #expect(run.errors.count == 1)
        }
    }
}
