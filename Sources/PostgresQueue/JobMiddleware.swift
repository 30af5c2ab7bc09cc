/// Code around every job a worker runs: logging, metrics, tracing, an auth or tenant context
/// (set a task-local value and call `next`: the handler runs inside it).
///
/// ```swift
/// struct TenantContext: JobMiddleware {
///     func run(_ job: ClaimedJob, context: JobContext, next: JobMiddlewareNext) async throws -> JobOutcome {
///         try await Tenant.$current.withValue(job.metadata["tenant"]) { try await next(job, context) }
///     }
/// }
/// handlers.use(TenantContext())
/// ```
///
/// Middleware runs in the order added, the first outermost, inside the job's task (so a
/// cancelled job cancels it too). It may return an outcome without calling `next`.
public protocol JobMiddleware: Sendable {
    /// Runs around the job: call `next` to run the rest of the chain and the handler.
    func run(_ job: ClaimedJob, context: JobContext, next: JobMiddlewareNext) async throws -> JobOutcome
}

/// The rest of a middleware chain: later middleware, then the handler.
public typealias JobMiddlewareNext = @Sendable (ClaimedJob, JobContext) async throws -> JobOutcome
