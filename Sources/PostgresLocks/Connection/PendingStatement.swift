import Synchronization

/// One statement's caller, resumed exactly once: with the statement's answer once the server
/// has said it is done (its `ReadyForQuery` read), or with an error when the connection closes
/// first.
///
/// The answer (rows, or the server's error) arrives at the statement's end, usually in the same
/// read as its `ReadyForQuery`. When the connection closes between the two, a successful answer
/// is not believed: a statement outside a transaction block commits after its
/// `CommandComplete`, and a backend ended in between rolls it back (see
/// ``TransactionStatusTracker/isAwaitingReady``).
final class PendingStatement<Value: Sendable>: Sendable {
    private enum Phase {
        case running(UnsafeContinuation<Value, any Error>)
        case answered(UnsafeContinuation<Value, any Error>, Result<Value, any Error>)
        case resumed
    }

    private let phase: Mutex<Phase>

    init(_ continuation: UnsafeContinuation<Value, any Error>) {
        phase = Mutex(.running(continuation))
    }

    /// Keeps the statement's answer until ``finish()``.
    func answer(_ result: Result<Value, any Error>) {
        phase.withLock { phase in
            if case .running(let continuation) = phase { phase = .answered(continuation, result) }
        }
    }

    /// Resumes the caller with the answer: the server said the statement is done.
    func finish() {
        resume { phase in
            guard case .answered(_, let result) = phase else { return nil }
            return result
        }
    }

    /// Resumes the caller with an error: the connection closed. A successful answer read before
    /// the close is not believed (whether the statement committed is unknown); an error answer
    /// is kept.
    func connectionClosed() {
        resume { phase in
            switch phase {
            case .running:
                return .failure(PostgresLocksError.connectionLost("while a statement was running"))
            case .answered(_, .failure(let error)):
                return .failure(error)
            case .answered(_, .success):
                return .failure(PostgresLocksError.connectionLost(
                    "after the statement's result and before the server said it was done: a statement outside a transaction block may not have committed"
                ))
            case .resumed:
                return nil
            }
        }
    }

    /// Resumes the caller at once with `error` (the statement was never sent).
    func fail(_ error: any Error) {
        resume { _ in .failure(error) }
    }

    private func resume(_ outcome: (Phase) -> Result<Value, any Error>?) {
        let resumption = phase.withLock { phase -> (UnsafeContinuation<Value, any Error>, Result<Value, any Error>)? in
            let continuation: UnsafeContinuation<Value, any Error>
            switch phase {
            case .running(let waiting), .answered(let waiting, _): continuation = waiting
            case .resumed: return nil
            }
            guard let result = outcome(phase) else { return nil }
            phase = .resumed
            return (continuation, result)
        }
        if let (continuation, result) = resumption { continuation.resume(with: result) }
    }
}
