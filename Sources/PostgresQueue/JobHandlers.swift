import Foundation
import Logging
import PostgresLocks
import PostgresNIO
import Synchronization

/// The handlers of a worker, one per job kind, each decoding its own `Codable` payload.
///
/// ```swift
/// var handlers = JobHandlers()
/// handlers.register("send-email") { (email: Email, context) in
///     try await mailer.send(email)
/// }
/// ```
public struct JobHandlers: Sendable {
    typealias Handler = @Sendable (ClaimedJob, JobContext) async throws -> Void
    private(set) var handlers: [String: Handler] = [:]

    /// No handlers yet.
    public init() {}

    /// Runs `handler` for jobs of `kind`, with the payload decoded as `Payload`. A payload
    /// that does not decode fails the job at once as dead (it would not decode on a retry
    /// either), with the error recorded; the worker goes on.
    public mutating func register<Payload: Decodable & SendableMetatype>(
        _ kind: String,
        as payload: Payload.Type = Payload.self,
        _ handler: @escaping @Sendable (Payload, JobContext) async throws -> Void
    ) {
        let decoder = JSONDecoder()  // one per kind: made once, not per job
        handlers[kind] = { job, context in
            let decoded = try job.decodePayload(as: Payload.self, using: decoder)
            try await handler(decoded, context)
        }
    }

    /// The kinds with a handler.
    public var kinds: [String] { handlers.keys.sorted() }
}
