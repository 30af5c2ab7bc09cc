/// The decisions of a lock wait's server-side cancel, without I/O (see ``LockWaitCancel``).
///
/// Events come from three places: the task-cancellation handler (``requestCancel()``), the
/// canceller's connection once it is leased (``connectionReadyToSend()``) and done
/// (``sendFinished()``), and the lock statement's end (``statementEnded()``). The machine says
/// what the shell must do; it never waits or sends anything itself.
struct LockWaitCancelStateMachine: Equatable {
    enum Phase: Equatable {
        /// No cancel was asked for.
        case idle
        /// Asked for; waiting for a connection to send it from.
        case pending
        /// `pg_cancel_backend` is running.
        case sending
        /// Sent, failed, or given up because the statement had ended.
        case done
    }

    /// What the end of the lock statement must do before its connection runs anything else.
    enum StatementEndAction: Equatable {
        /// Nothing is on its way to the backend: go on.
        case proceed
        /// A cancel is being sent: wait until ``sendFinished()`` (or close the connection if that
        /// takes too long).
        case waitForSend
    }

    private(set) var phase = Phase.idle
    private(set) var statementHasEnded = false

    /// A cancel is asked for. Returns whether to start leasing a connection to send it from
    /// (false: the statement has ended, or a cancel was already asked for).
    mutating func requestCancel() -> Bool {
        guard phase == .idle, !statementHasEnded else { return false }
        phase = .pending
        return true
    }

    /// The canceller has a connection. Returns whether to send `pg_cancel_backend` now (false:
    /// the statement ended meanwhile, and the backend may be running someone else's statement).
    mutating func connectionReadyToSend() -> Bool {
        guard phase == .pending, !statementHasEnded else {
            if phase == .pending { phase = .done }
            return false
        }
        phase = .sending
        return true
    }

    /// The send finished (or failed, or was skipped). Returns whether a statement end is waiting
    /// for it, to be resumed.
    mutating func sendFinished() -> Bool {
        let wasSending = phase == .sending
        phase = .done
        return wasSending && statementHasEnded
    }

    /// The lock statement ended.
    mutating func statementEnded() -> StatementEndAction {
        statementHasEnded = true
        return phase == .sending ? .waitForSend : .proceed
    }
}
