import Crypto
import Foundation
import PostgresLocks

/// Which jobs count as duplicates of each other: the same kind in the same queue with the same
/// arguments (all of them, or the fields named), enqueued within the same period, while the
/// earlier one is in one of the chosen states. The database enforces it (a unique index over the
/// computed key and the job's states), so concurrent enqueues from any number of processes
/// insert one job; the others are reported in ``EnqueueResult/skippedUniqueKeys``.
///
/// ```swift
/// // At most one report per customer per hour, even once the first has completed.
/// let job = try NewJob(kind: "report", payload: Report(customer: 42, format: "pdf"),
///                      unique: UniqueOptions(byFields: ["customer"], period: .seconds(3600)))
/// ```
public struct UniqueOptions: Sendable, Hashable {
    /// The payload's top-level fields that make two jobs the same (`nil`: the whole payload;
    /// empty: the kind alone).
    public var byFields: [String]?
    /// Jobs are duplicates only when enqueued within the same period, counted from the Unix
    /// epoch on the enqueuing process's clock (`nil`: forever).
    public var period: Duration?
    /// While the earlier job is in one of these states, a duplicate is not enqueued. Always
    /// includes available and running; add completed to keep a finished job's period closed.
    public var states: Set<JobState>

    /// Uniqueness by `byFields` of the payload (`nil`: all of it), within `period`, over
    /// `states` (default: available, running and completed).
    public init(byFields: [String]? = nil, period: Duration? = nil, states: Set<JobState> = [.available, .running, .completed]) {
        self.byFields = byFields
        self.period = period
        self.states = states
    }

    /// The states in a stable order, checked to include available and running.
    var stateList: [JobState] {
        JobState.allCases.filter { states.contains($0) || $0 == .available || $0 == .running }
    }

    /// The key stored with the job: the kind, the chosen arguments in a canonical form (keys
    /// sorted) and the period's start, hashed (SHA-256, hex).
    func key(kind: String, payloadJSON: String, now: Date) throws -> String {
        if let period {
            try PostgresLocksError.require(period >= .seconds(1), "a uniqueness period must be at least 1 second; found \(period)")
        }
        var parts = "kind=\(kind)\n"
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(payloadJSON.utf8), options: [.fragmentsAllowed])
        } catch {
            throw PostgresQueueError(code: .payloadCoding, message: "the payload of a \(kind) job is not JSON, so its uniqueness cannot be computed", underlying: error)
        }
        let chosen: Any
        if let fields = byFields {
            guard let dictionary = object as? [String: Any] else {
                throw PostgresLocksError(code: .invalidArgument, message: "uniqueness by fields needs a JSON object payload; the \(kind) payload is not one")
            }
            var subset: [String: Any] = [:]
            for field in fields { subset[field] = dictionary[field] ?? NSNull() }
            chosen = subset
        } else {
            chosen = object
        }
        let canonical = try JSONSerialization.data(withJSONObject: chosen, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
        parts += "args=" + String(decoding: canonical, as: UTF8.self) + "\n"
        if let period {
            let periodMS = Backoff.milliseconds(period)
            let nowMS = Int64((now.timeIntervalSince1970 * 1000).rounded(.down))
            parts += "period=\(periodMS)@\(nowMS - ((nowMS % periodMS) + periodMS) % periodMS)\n"
        }
        let digest = SHA256.hash(data: Data(parts.utf8))
        return "u:" + digest.map { String(format: "%02x", $0) }.joined()
    }
}
