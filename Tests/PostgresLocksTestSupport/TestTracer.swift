import InMemoryTracing
import Instrumentation
import Synchronization
import Tracing

/// The tracer the tests bootstrap (once per process: `InstrumentationSystem` takes one): it
/// keeps the spans of the traces a test starts with ``beginTrace(_:)`` and drops every other
/// span at once, so the rest of the suite, traced too, keeps nothing.
///
/// It propagates contexts as W3C trace context does: `traceparent` =
/// `00-<32 hex trace id>-<16 hex span id>-01`.
public final class TestTracer: Tracer, Sendable {
    public typealias Span = InMemorySpan

    /// The process's tracer, bootstrapped on first use.
    public static let shared: TestTracer = {
        let tracer = TestTracer()
        InstrumentationSystem.bootstrap(tracer)
        return tracer
    }()

    private struct State {
        var recorded: [String: [FinishedInMemorySpan]] = [:]
        var nextID: UInt64 = 1
    }

    private let state = Mutex(State())

    private init() {}

    /// A trace begun by a test: its root span (end it when the traced work is done) and its id.
    public struct Trace: Sendable {
        public let root: InMemorySpan
        public var traceID: String { root.spanContext.traceID }
    }

    /// Starts a recorded trace whose root span is named `name`.
    public func beginTrace(_ name: String) -> Trace {
        let traceID = nextHex(digits: 32)
        state.withLock { $0.recorded[traceID] = [] }
        let spanContext = InMemorySpanContext(traceID: traceID, spanID: nextHex(digits: 16), parentSpanID: nil)
        return Trace(root: makeSpan(name, parent: .topLevel, spanContext: spanContext, kind: .server, at: DefaultTracerClock.now))
    }

    /// The finished spans of `trace` so far, in the order they ended.
    public func finishedSpans(of trace: Trace) -> [FinishedInMemorySpan] {
        state.withLock { $0.recorded[trace.traceID] ?? [] }
    }

    /// Stops recording `trace` and drops its spans.
    public func forget(_ trace: Trace) {
        _ = state.withLock { $0.recorded.removeValue(forKey: trace.traceID) }
    }

    public func startSpan<Instant: TracerInstant>(
        _ operationName: String,
        context: @autoclosure () -> InstrumentationContext,
        ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant,
        function: String,
        file fileID: String,
        line: UInt
    ) -> InMemorySpan {
        let parent = context()
        let spanContext = if let parentSpan = parent.inMemorySpanContext {
            InMemorySpanContext(traceID: parentSpan.traceID, spanID: nextHex(digits: 16), parentSpanID: parentSpan.spanID)
        } else {
            InMemorySpanContext(traceID: nextHex(digits: 32), spanID: nextHex(digits: 16), parentSpanID: nil)
        }
        return makeSpan(operationName, parent: parent, spanContext: spanContext, kind: kind, at: instant())
    }

    private func makeSpan(_ name: String, parent: InstrumentationContext, spanContext: InMemorySpanContext, kind: SpanKind, at instant: some TracerInstant) -> InMemorySpan {
        InMemorySpan(operationName: name, context: parent, spanContext: spanContext, kind: kind, startInstant: instant) { [self] finished in
            record(finished)
        }
    }

    private func record(_ finished: FinishedInMemorySpan) {
        state.withLock { state in
            if state.recorded[finished.traceID] != nil { state.recorded[finished.traceID]!.append(finished) }
        }
    }

    private func nextHex(digits: Int) -> String {
        let id = state.withLock { state -> UInt64 in
            defer { state.nextID += 1 }
            return state.nextID
        }
        let hex = String(id, radix: 16)
        return String(repeating: "0", count: digits - hex.count) + hex
    }

    public func forceFlush() {}

    public func inject<Carrier, Inject: Injector>(_ context: InstrumentationContext, into carrier: inout Carrier, using injector: Inject) where Inject.Carrier == Carrier {
        guard let span = context.inMemorySpanContext else { return }
        injector.inject("00-\(span.traceID)-\(span.spanID)-01", forKey: "traceparent", into: &carrier)
    }

    public func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout InstrumentationContext, using extractor: Extract) where Extract.Carrier == Carrier {
        guard let header = extractor.extract(key: "traceparent", from: carrier) else { return }
        let parts = header.split(separator: "-")
        guard parts.count == 4, parts[0] == "00", parts[1].count == 32, parts[2].count == 16 else { return }
        context.inMemorySpanContext = InMemorySpanContext(traceID: String(parts[1]), spanID: String(parts[2]), parentSpanID: nil)
    }
}
