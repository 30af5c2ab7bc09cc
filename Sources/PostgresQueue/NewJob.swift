import Foundation
import PostgresLocks

/// A job to enqueue: its kind, payload and scheduling.
public struct NewJob: Sendable, Hashable {
    /// When a job may run first.
    public enum Schedule: Sendable, Hashable {
        /// As soon as a worker is free.
        case now
        /// This long after the server's clock at enqueue time.
        case after(Duration)
        /// At this instant.
        case at(Date)
    }

    /// The longest queue name, kind and unique key, in bytes.
    public static let maximumNameLength = 200

    /// The queue (workers claim from one queue).
    public var queue: String
    /// What the job is; selects the handler.
    public var kind: String
    /// The payload as JSON text.
    public var payloadJSON: String
    /// Lower runs first (default 0).
    public var priority: Int16
    /// When it may run first.
    public var schedule: Schedule
    /// How many attempts before it is dead (at least 1).
    public var maxAttempts: Int32
    /// A key that makes a second enqueue a no-op while a job with the same key and queue is
    /// in one of ``uniqueStates`` (set directly, or computed from ``UniqueOptions``).
    public var uniqueKey: String?
    /// The states in which ``uniqueKey`` blocks another job (always including available and
    /// running).
    public var uniqueStates: [JobState]
    /// Labels to find and group jobs by (at most 20, each 1 to 100 bytes).
    public var tags: [String]
    /// Small string values carried with the job (trace context, tenant, who enqueued it).
    public var metadata: [String: String]

    /// A job whose payload is `payload` encoded as JSON.
    ///
    /// - Throws: `PostgresLocksError.Code.invalidArgument` for an empty or
    ///   over-long queue, kind or unique key, or `maxAttempts` below 1;
    ///   ``PostgresQueueError/Code/payloadCoding`` if the payload does not encode.
    public init<Payload: Encodable>(
        kind: String,
        payload: Payload,
        queue: String = "default",
        priority: Int16 = 0,
        schedule: Schedule = .now,
        maxAttempts: Int32 = 20,
        uniqueKey: String? = nil,
        unique: UniqueOptions? = nil,
        tags: [String] = [],
        metadata: [String: String] = [:],
        now: Date = Date()
    ) throws {
        let json: String
        do {
            json = String(decoding: try JSONEncoder().encode(payload), as: UTF8.self)
        } catch {
            throw PostgresQueueError(code: .payloadCoding, message: "the payload of a \(kind) job does not encode as JSON", underlying: error)
        }
        try self.init(
            kind: kind, payloadJSON: json, queue: queue, priority: priority, schedule: schedule, maxAttempts: maxAttempts,
            uniqueKey: uniqueKey, unique: unique, tags: tags, metadata: metadata, now: now
        )
    }

    /// A job whose payload is already JSON text (checked by the server on insert).
    ///
    /// - Parameters:
    ///   - kind: what the job is; selects the handler.
    ///   - payloadJSON: the payload as JSON text.
    ///   - queue: the queue workers claim it from.
    ///   - priority: lower runs first.
    ///   - schedule: when it may run first.
    ///   - maxAttempts: attempts before it is dead (at least 1).
    ///   - uniqueKey: a key of your own: a second job with it is not enqueued while one is
    ///     available or running in the same queue.
    ///   - unique: uniqueness computed from the kind and the payload (or some of its fields),
    ///     within a period, over chosen states (see ``UniqueOptions``); not with `uniqueKey`.
    ///   - tags: labels to find and group jobs by.
    ///   - metadata: small string values carried with the job.
    ///   - now: the instant a uniqueness period is read from (the current time unless a test
    ///     or a backfill says otherwise).
    public init(
        kind: String,
        payloadJSON: String = "{}",
        queue: String = "default",
        priority: Int16 = 0,
        schedule: Schedule = .now,
        maxAttempts: Int32 = 20,
        uniqueKey: String? = nil,
        unique: UniqueOptions? = nil,
        tags: [String] = [],
        metadata: [String: String] = [:],
        now: Date = Date()
    ) throws {
        try Self.validateName(queue, what: "queue name")
        try Self.validateName(kind, what: "job kind")
        if let uniqueKey { try Self.validateName(uniqueKey, what: "unique key") }
        if uniqueKey != nil, unique != nil {
            throw PostgresLocksError(code: .invalidArgument, message: "give a job either a uniqueKey or UniqueOptions, not both")
        }
        try PostgresLocksError.require(tags.count <= 20, "a job has at most 20 tags; found \(tags.count)")
        for tag in tags {
            try Self.validateName(tag, what: "tag")
            try PostgresLocksError.require(tag.utf8.count <= 100, "the tag \"\(tag.prefix(20))…\" is \(tag.utf8.count) bytes long; at most 100")
        }
        try PostgresLocksError.require(metadata.count <= 50, "a job has at most 50 metadata entries; found \(metadata.count)")
        for (key, value) in metadata {
            try Self.validateName(key, what: "metadata key")
            guard value.utf8.count <= 4096, !value.unicodeScalars.contains(where: { $0.value == 0 }) else {
                throw PostgresLocksError(code: .invalidArgument, message: "the metadata value of \"\(key)\" is over 4096 bytes or contains a NUL character")
            }
        }
        try PostgresLocksError.require(maxAttempts >= 1, "maxAttempts must be at least 1; found \(maxAttempts)")
        if case .after(let delay) = schedule, delay < .zero {
            throw PostgresLocksError(code: .invalidArgument, message: "a job cannot be scheduled \(delay) in the past")
        }
        self.queue = queue
        self.kind = kind
        self.payloadJSON = payloadJSON
        self.priority = priority
        self.schedule = schedule
        self.maxAttempts = maxAttempts
        self.tags = tags
        self.metadata = metadata
        if let unique {
            self.uniqueKey = try unique.key(kind: kind, payloadJSON: payloadJSON, now: now)
            self.uniqueStates = unique.stateList
        } else {
            self.uniqueKey = uniqueKey
            self.uniqueStates = [.available, .running]
        }
    }

    static func validateName(_ name: String, what: String) throws(PostgresLocksError) {
        guard !name.isEmpty else { throw PostgresLocksError(code: .invalidArgument, message: "the \(what) is empty") }
        try PostgresLocksError.require(name.utf8.count <= maximumNameLength, "the \(what) is \(name.utf8.count) bytes long; at most \(maximumNameLength)")
        guard !name.unicodeScalars.contains(where: { $0.value == 0 }) else {
            throw PostgresLocksError(code: .invalidArgument, message: "the \(what) contains a NUL character")
        }
    }
}
