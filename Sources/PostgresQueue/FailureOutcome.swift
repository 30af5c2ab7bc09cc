import Foundation

/// What happened to a failed job.
public enum FailureOutcome: Sendable, Hashable {
    /// It will run again at this time.
    case retryScheduled(at: Date)
    /// It used its last attempt (or was discarded) and is dead.
    case dead
    /// The lease was no longer held: nothing was recorded.
    case leaseLost
}
