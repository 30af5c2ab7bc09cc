import NIOCore

/// A `TaskExecutor` that runs jobs on one NIO `EventLoop`.
///
/// PostgresNIO completes every statement on its connection's event loop. Code that prefers
/// this executor (`withTaskExecutorPreference`) resumes there, on the same thread, instead of
/// waking a thread of the global concurrent executor for every statement: on a small machine
/// that thread hop costs more CPU than the statement itself.
public final class EventLoopTaskExecutor: TaskExecutor {
    /// The event loop the jobs run on.
    public let eventLoop: any EventLoop

    /// Wraps `eventLoop`.
    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Runs `job` on the event loop.
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = self.asUnownedTaskExecutor()
        eventLoop.execute {
            job.runSynchronously(on: executor)
        }
    }
}
