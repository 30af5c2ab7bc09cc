import Logging
import PostgresNIO
import Synchronization

/// The server-side cancel of one lock statement, kept from landing on any other statement.
///
/// PostgresNIO sends no cancel request, so a cancelled lock wait is ended with
/// `pg_cancel_backend(pid)` from another pooled connection. That call is asynchronous: by the
/// time it runs, the wait may have ended and the connection gone back to the pool, and the
/// signal would then cancel whatever statement runs on that backend next, another caller's
/// (seen in the cancellation storm of the fault suite: about 1 call in 60 failed as
/// cancelled though nobody had cancelled it). So:
/// - the cancel is sent only if the lock statement is still running when the canceller has a
///   connection (``request(pid:canceller:logger:)``);
/// - when the statement ends, a cancel being sent at that moment is waited for before the
///   connection runs anything else (``statementEnded()``). A signal that reaches an idle
///   backend is ignored by PostgreSQL, so once `pg_cancel_backend` has returned, the next
///   statement is safe. If that wait takes too long, the connection must be closed instead.
final class LockWaitCancel: Sendable {
    private struct State {
        var machine = LockWaitCancelStateMachine()
        var waiter: CheckedContinuation<Bool, Never>?
    }

    private let state = Mutex(State())

    /// How long the end of a statement waits for a cancel that is being sent.
    static let settleLimit: Duration = .seconds(5)

    /// Asks for the cancel (from a task-cancellation handler); does nothing if the statement has
    /// already ended or a cancel was already asked for.
    func request(pid: Int32, canceller: PostgresClient, logger: Logger) {
        guard state.withLock({ $0.machine.requestCancel() }) else { return }
        Task {
            do {
                try await canceller.withConnection { other in
                    // Only while the statement still runs: after it ended, the backend may be
                    // running someone else's.
                    guard self.state.withLock({ $0.machine.connectionReadyToSend() }) else { return }
                    try await other.runStatement("SELECT pg_cancel_backend(\(pid))", logger: logger)
                }
            } catch {
                logger.warning("could not cancel a lock wait on the server", metadata: ["pid": "\(pid)", "error": .error(error)])
            }
            self.state.withLock { state -> CheckedContinuation<Bool, Never>? in
                state.machine.sendFinished() ? state.waiter.take() : nil
            }?.resume(returning: true)
        }
    }

    /// Marks the statement ended. Returns `true` when its connection may run another statement:
    /// no cancel is on its way to it any more. `false` means a cancel was still being sent after
    /// ``settleLimit``; close the connection.
    func statementEnded() async -> Bool {
        guard state.withLock({ $0.machine.statementEnded() }) == .waitForSend else { return true }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let alreadyDone = state.withLock { state -> Bool in
                if state.machine.phase == .done { return true }
                state.waiter = continuation
                return false
            }
            if alreadyDone {
                continuation.resume(returning: true)
                return
            }
            // An unstructured timer: the waiting task is usually cancelled, and must still wait.
            Task {
                try? await Task.sleep(for: Self.settleLimit)
                self.state.withLock { $0.waiter.take() }?.resume(returning: false)
            }
        }
    }
}
