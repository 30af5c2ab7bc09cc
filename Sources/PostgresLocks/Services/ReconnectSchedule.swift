/// When a service reconnects its dedicated session after the session ended, as a pure value.
///
/// The pause follows ``Backoff`` (equal jitter) over the failures in a row, and starts over
/// after a healthy session, one that got going before it ended: a leader election that queued
/// on its lock, a queue worker whose `LISTEN` was set up. Used by ``LeaderElection`` and the
/// queue worker's `LISTEN` connection.
package struct ReconnectSchedule: Sendable {
    /// The pauses' growth and ceiling.
    package let backoff: Backoff
    /// Sessions in a row that ended before they got going (a healthy one counts as the first).
    package private(set) var failuresInARow = 0

    package init(backoff: Backoff) { self.backoff = backoff }

    /// A session ended; `healthy` if it got going first. Returns the pause before the next
    /// connect.
    package mutating func pauseAfterSession<G: RandomNumberGenerator>(healthy: Bool, using generator: inout G) -> Duration {
        failuresInARow = healthy ? 1 : failuresInARow + 1
        return backoff.delay(afterAttempt: failuresInARow, using: &generator)
    }

    /// ``pauseAfterSession(healthy:using:)`` with the system's random numbers.
    package mutating func pauseAfterSession(healthy: Bool) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return pauseAfterSession(healthy: healthy, using: &generator)
    }
}
