import Foundation
import PostgresLocks

/// What a handler decided about its job; the worker records it, fenced by the job's lease.
///
/// ```swift
/// handlers.registerWithOutcome(SyncAccount.self) { job, context in
///     guard let account = try await accounts.find(job.accountID) else { return .discard(reason: "account deleted") }
///     if account.isLocked { return .snooze(for: .seconds(60)) }     // not counted as an attempt
///     if case .throttled(let wait) = try await remote.sync(account) { return .retry(after: wait, reason: "throttled") }
///     return try .complete(output: SyncResult(changed: account.changes))
/// }
/// ```
///
/// A handler that returns nothing completes its job; one that throws fails the attempt (retried
/// with the kind's backoff until its attempts are used up).
public struct JobOutcome: Sendable, Hashable {
    enum Decision: Sendable, Hashable {
        case complete(outputJSON: String?)
        case snooze(Duration)
        case retry(after: Duration, reason: String)
        case discard(reason: String)
        case cancel(reason: String)
    }

    let decision: Decision

    /// Done: the job is completed.
    public static let complete = JobOutcome(decision: .complete(outputJSON: nil))

    /// Done, recording `output` (JSON text) with the job.
    public static func complete(outputJSON: String) -> JobOutcome {
        JobOutcome(decision: .complete(outputJSON: outputJSON))
    }

    /// Done, recording `output` encoded as JSON with the job.
    ///
    /// - Throws: ``PostgresQueueError/Code/payloadCoding`` if it does not encode.
    public static func complete<Output: Encodable>(output: Output) throws -> JobOutcome {
        do {
            return .complete(outputJSON: String(decoding: try JSONEncoder().encode(output), as: UTF8.self))
        } catch {
            throw PostgresQueueError(code: .payloadCoding, message: "the output of a job does not encode as JSON", underlying: error)
        }
    }

    /// Not now: the job runs again after `delay`, and this run does not count as an attempt.
    public static func snooze(for delay: Duration) -> JobOutcome {
        JobOutcome(decision: .snooze(max(delay, .zero)))
    }

    /// This attempt failed: the job runs again after `delay` (instead of the kind's backoff),
    /// or is dead if that was its last attempt.
    public static func retry(after delay: Duration, reason: String) -> JobOutcome {
        JobOutcome(decision: .retry(after: max(delay, .zero), reason: reason))
    }

    /// Give up: the job is dead at once with `reason`, whatever attempts it has left (an admin
    /// can retry it).
    public static func discard(reason: String) -> JobOutcome {
        JobOutcome(decision: .discard(reason: reason))
    }

    /// Not wanted any more: the job is cancelled with `reason`.
    public static func cancel(reason: String) -> JobOutcome {
        JobOutcome(decision: .cancel(reason: reason))
    }
}
