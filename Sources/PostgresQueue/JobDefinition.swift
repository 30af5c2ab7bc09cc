import Foundation

/// A kind of job as a type: its `kind` names it in the queue, and its stored properties are
/// its `Codable` parameters (the payload).
///
/// ```swift
/// struct SendWelcomeEmail: JobDefinition {
///     static let kind = "send-welcome-email"
///     var userID: Int64
/// }
///
/// try await queue.enqueue(NewJob(SendWelcomeEmail(userID: 7)), on: client, logger: logger)
/// handlers.register(SendWelcomeEmail.self) { job, context in
///     try await mailer.sendWelcome(to: job.userID)
/// }
/// ```
public protocol JobDefinition: Codable, Sendable {
    /// The kind stored with each job (and the handler it selects).
    static var kind: String { get }
    /// The queue jobs of this type go to unless told otherwise (default `"default"`).
    static var queue: String { get }
    /// Attempts a job of this type gets unless told otherwise (default 20).
    static var maxAttempts: Int32 { get }
}

extension JobDefinition {
    /// `"default"`.
    public static var queue: String { "default" }
    /// 20.
    public static var maxAttempts: Int32 { 20 }
}

extension NewJob {
    /// A job of a ``JobDefinition`` type, its parameters encoded as the payload; queue and
    /// attempts default to the type's.
    public init<Definition: JobDefinition>(
        _ job: Definition,
        queue: String? = nil,
        priority: Int16 = 0,
        schedule: Schedule = .now,
        maxAttempts: Int32? = nil,
        uniqueKey: String? = nil,
        unique: UniqueOptions? = nil,
        tags: [String] = [],
        metadata: [String: String] = [:],
        now: Date = Date()
    ) throws {
        try self.init(
            kind: Definition.kind, payload: job, queue: queue ?? Definition.queue, priority: priority, schedule: schedule,
            maxAttempts: maxAttempts ?? Definition.maxAttempts, uniqueKey: uniqueKey, unique: unique, tags: tags, metadata: metadata,
            now: now
        )
    }
}
