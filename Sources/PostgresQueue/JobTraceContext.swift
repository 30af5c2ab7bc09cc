import PostgresLocks
import Tracing

/// How a job carries the trace context of the code that enqueued it, so the span of its run
/// continues that trace: a request's trace shows the jobs it caused.
///
/// At enqueue, the `pglocks.enqueue` span's context is written into the job's metadata by the
/// bootstrapped instrument's propagator (with swift-otel: the W3C `traceparent` and
/// `tracestate` keys); the worker reads it back and starts the job's `pglocks.job` span as its
/// child. Keys a job already carries are left as they are; with no instrument bootstrapped,
/// nothing is written.
enum JobTraceContext {
    /// `jobs` with the current trace context added to each one's metadata.
    static func carrying(_ jobs: [NewJob], context: ServiceContext) -> [NewJob] {
        var carried: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &carried, using: MetadataInjector())
        guard !carried.isEmpty else { return jobs }
        return jobs.map { job in
            var job = job
            job.metadata.merge(carried) { existing, _ in existing }
            return job
        }
    }

    /// The trace context stored with a job, or nil if it carries none.
    static func extract(from metadata: [String: String]) -> ServiceContext? {
        guard !metadata.isEmpty else { return nil }
        var context = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(metadata, into: &context, using: MetadataExtractor())
        return context.isEmpty ? nil : context
    }
}

extension JobQueue {
    /// Runs an enqueue of `jobs` in a `pglocks.enqueue` span, handing it the jobs with the
    /// span's trace context in their metadata; `inserted` reads how many were inserted from
    /// its result.
    func tracedEnqueue<Result: Sendable>(
        _ jobs: [NewJob],
        inserted: (Result) -> Int,
        _ enqueue: ([NewJob]) async throws -> Result
    ) async throws -> Result {
        try await LibrarySpan.with("pglocks.enqueue", ofKind: .producer) { span in
            span.attributes["pglocks.queue.schema"] = schema.name
            span.attributes["pglocks.queue.jobs"] = jobs.count
            if let first = jobs.first {
                span.attributes["pglocks.job.queue"] = first.queue
                span.attributes["pglocks.job.kind"] = first.kind
            }
            let result = try await enqueue(JobTraceContext.carrying(jobs, context: span.context))
            span.attributes["pglocks.enqueue.inserted"] = inserted(result)
            return result
        }
    }
}

/// Writes propagation fields into a job's metadata.
struct MetadataInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }
}

/// Reads propagation fields from a job's metadata.
struct MetadataExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? {
        carrier[key]
    }
}
