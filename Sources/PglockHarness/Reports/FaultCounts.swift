/// How many connection faults a scenario went through, for its report rows.
package struct FaultCounts: Codable, Sendable, Equatable {
    /// Lost connections (backend terminated, server restarting) that the demo's own loops
    /// retried or counted: setup and check statements, the many-keys and singleton loops,
    /// leader-election rounds.
    package var connectionLosses = 0
    /// Transactions re-run by ``RetryPolicy`` after a lost connection (or, rarely, a deadlock).
    package var reruns = 0
    /// Session locks lost with their session while their work ran (the work was cancelled).
    package var locksLost = 0

    /// Counts from their parts.
    package init(connectionLosses: Int = 0, reruns: Int = 0, locksLost: Int = 0) {
        self.connectionLosses = connectionLosses
        self.reruns = reruns
        self.locksLost = locksLost
    }

    package static func - (lhs: FaultCounts, rhs: FaultCounts) -> FaultCounts {
        FaultCounts(
            connectionLosses: lhs.connectionLosses - rhs.connectionLosses,
            reruns: lhs.reruns - rhs.reruns,
            locksLost: lhs.locksLost - rhs.locksLost
        )
    }

    package var isZero: Bool { self == FaultCounts() }

    /// "faults survived: 3 lost connections retried, 5 transactions re-run".
    package var summary: String {

        var parts = ["\(connectionLosses) lost connections retried", "\(reruns) transactions re-run"]
        if locksLost > 0 { parts.append("\(locksLost) session locks lost") }
        return "faults survived: " + parts.joined(separator: ", ")
    }
}
