/// Where a job is in its life.
public enum JobState: String, Sendable, Codable, CaseIterable, Hashable {
    /// Waiting to be claimed (its `run_at` may be in the future: scheduled or backing off).
    case available
    /// Claimed by a worker that holds its lease.
    case running
    /// Finished successfully.
    case completed
    /// Failed its last allowed attempt, or was discarded; kept for inspection and retry.
    case dead
    /// Cancelled before it finished.
    case cancelled

    /// States a job leaves only by an admin action or pruning.
    public static let finished: [JobState] = [.completed, .dead, .cancelled]
}
