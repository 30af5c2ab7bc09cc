import Tracing

/// The library's spans (swift-distributed-tracing), in one place: what each is called, which
/// attributes it carries, and how it is started and ended.
///
/// Every span is a child of the task's current context (`ServiceContext.current`: the
/// request's span in a traced server), and work done inside one (a lock taken inside a checked
/// transaction) is a child of it. With no tracer bootstrapped the calls cost a few
/// nanoseconds (swift-distributed-tracing's no-op tracer).
///
/// | Span | Kind | Attributes |
/// |---|---|---|
/// | `pglocks.transaction` | internal | `pglocks.transaction.attempt`, `pglocks.transaction.outcome` |
/// | `pglocks.retrying_transaction` | internal | `pglocks.transaction.attempts`; an event `retry` per retry with `pglocks.retry.reason` and `pglocks.retry.backoff_ms` |
/// | `pglocks.lock` | internal | `pglocks.lock.key`, `.mode`, `.scope`, `.keys`, `.waited_ms`, `.outcome` |
/// | `pglocks.gapless_number` | internal | `pglocks.counter.table`, `.scope`, `.strategy`, `.number` |
/// | `pglocks.ingestion_batch` | internal | `pglocks.ingestion.table`, `.events`, `.new`, `.duplicates` |
package enum LibrarySpan {
    /// Runs `body` in a new span named `name`, bound as the current context while it runs (so
    /// spans started inside are its children), and ends it afterwards; a thrown error is
    /// recorded on it.
    package static func with<Result>(
        _ name: String,
        ofKind kind: SpanKind = .internal,
        context: ServiceContext? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (any Span) async throws -> sending Result
    ) async throws -> sending Result {
        let span = startSpan(
            name, context: context ?? ServiceContext.current ?? .topLevel, ofKind: kind, at: DefaultTracerClock.now
        )
        defer { span.end() }
        do {
            let box = try await ServiceContext.$current.withValue(span.context) {
                SendingBox(try await body(span))
            }
            return box.value
        } catch {
            span.recordError(error)
            throw error
        }
    }

    /// Records a span that has already happened: it began `duration` ago and ends now (what
    /// the lock metrics know when a wait ends).
    package static func recordFinished(
        _ name: String,
        lasted duration: Duration,
        error: (any Error)? = nil,
        _ describe: (inout SpanAttributes) -> Void
    ) {
        let end = DefaultTracerClock.now
        let nanoseconds = UInt64(clamping: max(0, duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000))
        let start = DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: end.nanosecondsSinceEpoch &- min(nanoseconds, end.nanosecondsSinceEpoch))
        let span = startSpan(
            name, context: ServiceContext.current ?? .topLevel, ofKind: .internal, at: start
        )
        guard span.isRecording else {
            span.end(at: end)
            return
        }
        span.updateAttributes(describe)
        if let error { span.recordError(error) }
        span.end(at: end)
    }
}
