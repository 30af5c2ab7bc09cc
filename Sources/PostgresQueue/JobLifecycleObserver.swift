import Foundation

/// Told of every job's life, for audit logs, metrics or notifications; give observers to
/// ``JobQueue/init(schema:notifyDebounce:observers:)``. Every method has an empty default.
///
/// Observers are called after the fact, on the path of the work (keep them quick), and never
/// change an outcome. A worker tells them an attempt's outcome before it runs that job again
/// (another worker process may run the retry first: each process has its own observers).
/// `jobsEnqueued` is called by the enqueuing task after the insert: outside a transaction once
/// it has committed, so a worker may already have started, even finished, the job; inside a
/// transaction the jobs exist only if it commits. Jobs the reaper makes available again or dead after their
/// lease expired (their worker died) are not reported: no worker ran them to an outcome.
public protocol JobLifecycleObserver: Sendable {
    /// Jobs were inserted (``EnqueueResult/ids`` lists them; skipped duplicates are not).
    /// After a bulk ``JobQueue/enqueueByCopy(_:on:logger:)`` every job given was inserted and
    /// the ids are empty (`COPY` returns none).
    func jobsEnqueued(_ jobs: [NewJob], result: EnqueueResult) async
    /// A worker is about to run `job`.
    func jobStarted(_ job: ClaimedJob) async
    /// `job` finished and its completion is being recorded.
    func jobCompleted(_ job: ClaimedJob, runtime: Duration) async
    /// An attempt of `job` failed; it runs again at `retryAt` (`nil`: it is dead now, and
    /// ``jobDead(_:reason:)`` follows).
    func jobFailed(_ job: ClaimedJob, error: String, retryAt: Date?) async
    /// `job` is dead: its attempts are used up or its handler discarded it.
    func jobDead(_ job: ClaimedJob, reason: String) async
}

extension JobLifecycleObserver {
    /// Does nothing.
    public func jobsEnqueued(_ jobs: [NewJob], result: EnqueueResult) async {}
    /// Does nothing.
    public func jobStarted(_ job: ClaimedJob) async {}
    /// Does nothing.
    public func jobCompleted(_ job: ClaimedJob, runtime: Duration) async {}
    /// Does nothing.
    public func jobFailed(_ job: ClaimedJob, error: String, retryAt: Date?) async {}
    /// Does nothing.
    public func jobDead(_ job: ClaimedJob, reason: String) async {}
}
