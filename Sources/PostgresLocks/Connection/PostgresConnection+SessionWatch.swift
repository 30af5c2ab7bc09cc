import Logging
import PostgresNIO

extension PostgresConnection {
    /// The one heartbeat for a dedicated session that holds a lock (a session lock's, a
    /// leader's): returns why the session can no longer be vouched for, or nil once `stop`
    /// fires or the task is cancelled.
    ///
    /// Every `interval` it asks the server `holdCount`, a statement that counts how many of the
    /// watched locks this session's own server process holds, so a server process that changed
    /// under the connection (an undetected transaction pooler) shows as a lost lock. The
    /// session is lost when the connection closes, the statement fails or counts none, or no
    /// answer comes within `answerLimit`: then `onUnanswered` runs and the connection is closed,
    /// the only way to end a statement whose answer never comes (a silent network failure).
    /// While `skipWhile` says so, heartbeats are skipped (the close is still noticed at once).
    func watchSession(
        every interval: Duration?,
        answerLimit: Duration,
        holdCount: PostgresQuery,
        stop: OneShotSignal? = nil,
        onUnanswered: (@Sendable () -> Void)? = nil,
        skipWhile busy: (@Sendable () -> Bool)? = nil,
        logger: Logger
    ) async -> String? {
        let closed = OneShotSignal()
        let unregister = onClose { closed.fire() }
        defer { unregister() }
        let signals = [closed] + (stop.map { [$0] } ?? [])
        while !Task.isCancelled {
            if let interval {
                switch await OneShotSignal.firstFired(of: signals, within: interval) {
                case 0?: return "the connection closed"
                case _?: return nil
                case nil: break
                }
            } else {
                // No heartbeat: only the connection's close (or a stop) ends the watch.
                switch await OneShotSignal.firstFired(of: signals, within: .seconds(3600)) {
                case 0?: return "the connection closed"
                case _?: return nil
                case nil: continue
                }
            }
            if Task.isCancelled { return nil }
            // A statement already in flight that may wait as long as it must (a lock wait) holds
            // the connection: a heartbeat would queue behind it and be taken for unanswered.
            if busy?() == true { continue }
            do {
                let held = try await runWithin(answerLimit, "heartbeat", logger: logger, onTimeout: onUnanswered) {
                    try await self.runStatement(holdCount, logger: logger).rows[0].decode(Int64.self)
                }
                if held == 0 { return "a heartbeat found the lock no longer held by this session" }
            } catch {
                if Task.isCancelled { return nil }
                return "a heartbeat failed: \(error)"
            }
        }
        return nil
    }
}
