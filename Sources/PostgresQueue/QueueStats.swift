import Foundation

/// Counts of jobs per queue and state.
public struct QueueStats: Sendable, Hashable, Codable {
    /// One queue's counts.
    public struct Row: Sendable, Hashable, Codable {
        /// The queue.
        public var queue: String
        /// Jobs per state (states with none are left out).
        public var counts: [String: Int64]
        /// Available jobs whose run time has come (the backlog).
        public var ready: Int64
        /// Age in seconds of the oldest ready job (how far behind the workers are).
        public var oldestReadySeconds: Double?
    }

    /// Per queue, sorted by name.
    public var queues: [Row]
}

/// One job as the admin commands show it.
public struct JobSummary: Sendable, Hashable, Codable {
    /// The id.
    public var id: Int64
    /// The queue.
    public var queue: String
    /// The kind.
    public var kind: String
    /// The state.
    public var state: String
    /// Attempts made so far.
    public var attempt: Int32
    /// Attempts allowed.
    public var maxAttempts: Int32
    /// When it runs (or ran) next.
    public var runAt: Date
    /// The last error recorded.
    public var lastError: String?
    /// The worker holding it, when running.
    public var leaseOwner: String?
}
