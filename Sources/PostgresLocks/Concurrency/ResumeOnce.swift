import NIOCore
import PostgresNIO
import Synchronization

/// Resumes a continuation at most once, whichever of several events comes first.
final class ResumeOnce<Value: Sendable>: Sendable {
    private let continuation: Mutex<UnsafeContinuation<Value, any Error>?>

    init(_ continuation: UnsafeContinuation<Value, any Error>) {
        self.continuation = Mutex(continuation)
    }

    func resume(with result: Result<Value, any Error>) {
        let continuation = self.continuation.withLock { stored -> UnsafeContinuation<Value, any Error>? in
            defer { stored = nil }
            return stored
        }
        continuation?.resume(with: result)
    }
}
