import PostgresLocks

/// A queue's runtime settings, stored in the queues table and obeyed by every worker.
public struct QueueControl: Sendable, Hashable, Codable {
    /// The queue.
    public var queue: String
    /// Paused: no worker claims from it until it is resumed.
    public var paused: Bool
    /// Jobs each worker of this queue runs at once, replacing the worker's configured
    /// concurrency while set (`nil`: each worker's own setting).
    public var concurrency: Int?
    /// Whether fleet-wide limits apply (claims then take turns behind the queue's claim lock).
    public var limited: Bool
    /// The limits, per kind (kind `nil` for the queue as a whole).
    public var limits: [JobLimits]

    /// The settings of a queue nobody changed: running, no limits.
    public static func unchanged(_ queue: String) -> QueueControl {
        QueueControl(queue: queue, paused: false, concurrency: nil, limited: false, limits: [])
    }
}

/// Fleet-wide limits on a queue, or on one kind of job in it: how many may run at once across
/// every worker and process, and how many may start per period.
public struct JobLimits: Sendable, Hashable, Codable {
    /// A rate: at most `starts` jobs start within any window of `period`.
    public struct Rate: Sendable, Hashable, Codable {
        /// Starts allowed per window.
        public var starts: Int
        /// The window's length (a sliding window, at least 1 ms).
        public var period: Duration

        /// At most `starts` starts per `period`.
        public init(_ starts: Int, per period: Duration) {
            self.starts = starts
            self.period = period
        }
    }

    /// The kind limited, or `nil` for the whole queue.
    public var kind: String?
    /// At most this many running at once (`nil`: no cap).
    public var maxRunning: Int?
    /// At most this many starts per period (`nil`: no rate limit).
    public var rate: Rate?

    /// Limits for `kind` (or the whole queue when `nil`).
    public init(kind: String? = nil, maxRunning: Int? = nil, rate: Rate? = nil) {
        self.kind = kind
        self.maxRunning = maxRunning
        self.rate = rate
    }

    func validate() throws {
        if let kind { try NewJob.validateName(kind, what: "job kind") }
        try PostgresLocksError.require(maxRunning != nil || rate != nil, "limits need maxRunning, a rate, or both (use removeLimits to lift them)")
        if let maxRunning, !(1...1_000_000).contains(maxRunning) {
            throw PostgresLocksError(code: .invalidArgument, message: "maxRunning must be from 1 to 1000000; found \(maxRunning)")
        }
        if let rate {
            try PostgresLocksError.require((1...1_000_000).contains(rate.starts), "a rate allows 1 to 1000000 starts per period; found \(rate.starts)")
            try PostgresLocksError.require(rate.period >= .milliseconds(1) && rate.period <= .seconds(7 * 24 * 3600), "a rate's period must be from 1 ms to 7 days; found \(rate.period)")
        }
    }
}
