import PostgresLocks

/// How a worker runs one kind of job, beside what each job carries.
///
/// ```swift
/// handlers.register(Thumbnail.self, settings: JobKindSettings(
///     maxAttempts: 5, backoff: Backoff(initial: .seconds(2), maximum: .seconds(60)),
///     runTimeout: .seconds(30), maxRuntime: .seconds(120))) { job, context in … }
/// ```
public struct JobKindSettings: Sendable, Hashable {
    /// Attempts allowed for this kind, overriding the jobs' own `maxAttempts` when set.
    public var maxAttempts: Int32?
    /// Delays between failed attempts (`nil`: the worker's ``QueueWorker/Configuration/backoff``).
    public var backoff: Backoff?
    /// An attempt running longer is cancelled (its task is cancelled) and fails with
    /// ``PostgresQueueError/Code/runTimeout``; it is retried like any failure.
    public var runTimeout: Duration?
    /// The longest a job's lease is kept alive by the heartbeat, counted from its start. Past it
    /// the heartbeat stops extending the lease, so a handler that ignores cancellation loses the
    /// job to the reaper (and another worker) when the lease runs out, instead of holding it
    /// for as long as its process lives.
    public var maxRuntime: Duration?

    /// Settings for a kind; every one left `nil` takes the worker's or the job's own.
    public init(maxAttempts: Int32? = nil, backoff: Backoff? = nil, runTimeout: Duration? = nil, maxRuntime: Duration? = nil) {
        self.maxAttempts = maxAttempts
        self.backoff = backoff
        self.runTimeout = runTimeout
        self.maxRuntime = maxRuntime
    }

    func validate(kind: String) throws {
        if let maxAttempts, maxAttempts < 1 {
            throw PostgresLocksError(code: .invalidArgument, message: "maxAttempts of kind \(kind) must be at least 1; found \(maxAttempts)")
        }
        for (name, value) in [("runTimeout", runTimeout), ("maxRuntime", maxRuntime)] {
            if let value, value <= .zero {
                throw PostgresLocksError(code: .invalidArgument, message: "\(name) of kind \(kind) must be positive; found \(value)")
            }
        }
    }
}
