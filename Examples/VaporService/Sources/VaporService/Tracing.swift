#if OTel
import OTel
#endif

/// How the service's traces leave the process.
enum Tracing {
    /// With the `OTel` trait, exports traces (the request spans of Vapor's `TracingMiddleware`,
    /// the library's lock, transaction, number and job spans under them) with swift-otel over
    /// OTLP to `OTEL_EXPORTER_OTLP_ENDPOINT`, propagating W3C `traceparent`, which is what each
    /// enqueued job carries in its metadata. Without it, no tracer is bootstrapped and every
    /// span is a no-op.
    static func bootstrap(serviceName: String) async throws {
        #if OTel
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        let observability = try OTel.bootstrap(configuration: configuration)
        // The exporter runs until the process ends.
        Task { try await observability.run() }
        #endif
    }
}
