import ServiceLifecycle
#if OTel
import OTel
#endif

/// How the service's traces leave the process.
enum TraceExport {
    /// With the `OTel` trait, bootstraps swift-otel and returns its exporter, a `Service` to run
    /// with the others (it sends the spans in batches and flushes them at graceful shutdown):
    /// the request spans of Vapor's `TracingMiddleware` and the library's lock, transaction,
    /// number and job spans under them, over OTLP to `OTEL_EXPORTER_OTLP_ENDPOINT`, propagating
    /// W3C `traceparent`, which is what each enqueued job carries in its metadata. Without the
    /// trait, no tracer is bootstrapped, every span is a no-op, and there is nothing to run.
    static func bootstrap(serviceName: String) throws -> (any Service)? {
        #if OTel
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        let observability = try OTel.bootstrap(configuration: configuration)
        return observability
        #else
        return nil
        #endif
    }
}
