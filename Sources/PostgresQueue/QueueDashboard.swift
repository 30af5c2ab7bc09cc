import Foundation

/// What an operator looks at first about a queue schema, read with bounded queries: live job
/// counts per queue, kind and state, the last hour minute by minute, pauses and schedules.
///
/// Bounded for big histories: the live jobs table is counted exactly; the completed archive
/// (which may hold millions of rows) is counted exactly for the last hour only, through its
/// `finished_at` index, and as a whole by the planner's estimate.
public struct QueueDashboard: Sendable, Hashable, Codable {
    /// Jobs of one queue and kind in one state.
    public struct Count: Sendable, Hashable, Codable {
        /// The queue.
        public var queue: String
        /// The job kind.
        public var kind: String
        /// The state (`completed` counts the last hour only).
        public var state: JobState
        /// How many.
        public var count: Int64
    }

    /// One minute of the last hour.
    public struct Minute: Sendable, Hashable, Codable {
        /// The minute's start.
        public var start: Date
        /// Jobs completed in it.
        public var completed: Int64
        /// Jobs that failed for good (became `dead`) in it.
        public var failed: Int64
        /// The mean wait between a job's `run_at` and its last attempt's start, for jobs
        /// finished in this minute (nil when none finished).
        public var pickupSeconds: Double?
        /// Jobs ready (`run_at` passed) and not yet picked up at the minute's end.
        public var depth: Int64
    }

    /// Live counts (`available`, `running`, `dead`, `cancelled`, and `completed` in the last hour).
    public var counts: [Count]
    /// The planner's estimate of all completed jobs kept.
    public var completedEstimate: Int64
    /// The last 60 minutes, oldest first.
    public var minutes: [Minute]
    /// The schedules of periodic jobs.
    public var schedules: [ScheduleSummary]
    /// The stored settings of every queue that has any (pauses, concurrency, limits).
    public var controls: [QueueControl]

    /// Queues an operator paused (from ``controls``).
    public var paused: [String] { controls.filter(\.paused).map(\.queue) }

    /// Every queue name seen in ``counts`` or ``controls``, sorted.
    public var queues: [String] { Array(Set(counts.map(\.queue) + controls.map(\.queue))).sorted() }
}

/// One job with everything known about it, for a job's page.
public struct JobDetail: Sendable, Hashable, Codable {
    /// The job's id.
    public var id: Int64
    /// Its queue.
    public var queue: String
    /// Its kind.
    public var kind: String
    /// Its state.
    public var state: String
    /// Its payload, as JSON text.
    public var payload: String
    /// Its priority.
    public var priority: Int16
    /// Attempts made.
    public var attempt: Int32
    /// Attempts allowed.
    public var maxAttempts: Int32
    /// The last attempt's error.
    public var lastError: String?
    /// The worker holding its lease (while running).
    public var leaseOwner: String?
    /// When its lease ends (while running).
    public var leaseExpiresAt: Date?
    /// Its uniqueness key.
    public var uniqueKey: String?
    /// When it was enqueued.
    public var createdAt: Date
    /// When it may run (next).
    public var runAt: Date
    /// When its last attempt started.
    public var attemptedAt: Date?
    /// When it finished.
    public var finishedAt: Date?
}

/// Which jobs a job list shows. Every field is optional; all given ones must match.
public struct JobFilter: Sendable, Hashable, Codable {
    /// Only jobs in this state.
    public var state: JobState?
    /// Only jobs of this queue.
    public var queue: String?
    /// Only jobs of this kind.
    public var kind: String?
    /// Only jobs whose last error contains this text (case-insensitive); searched among the
    /// live, dead and cancelled jobs, not the completed archive.
    public var errorContains: String?
    /// Only jobs with a smaller id (the next page of a list, newest first).
    public var before: Int64?

    /// A filter; no argument means every job.
    public init(state: JobState? = nil, queue: String? = nil, kind: String? = nil, errorContains: String? = nil, before: Int64? = nil) {
        self.state = state
        self.queue = queue
        self.kind = kind
        self.errorContains = errorContains
        self.before = before
    }

    /// How many of the newest completed jobs a list searches (the archive may hold millions).
    public static let completedSearchDepth = 100_000
}
