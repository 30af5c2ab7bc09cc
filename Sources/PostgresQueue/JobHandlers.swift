import Foundation
import Logging
import PostgresLocks
import PostgresNIO
import Synchronization

/// What a handler gets besides its payload.
public struct JobContext: Sendable {
    /// The job, with its lease.
    public let job: ClaimedJob
    /// The queue.
    public let queue: JobQueue
    /// A client for the job's own work.
    public let client: PostgresClient
    let baseLogger: Logger
    let completedInTransaction: CompletionFlag

    /// A logger with the job's id, kind and attempt as metadata.
    public var logger: Logger {
        var logger = baseLogger
        logger[metadataKey: "job"] = "\(job.id)"
        logger[metadataKey: "kind"] = "\(job.kind)"
        logger[metadataKey: "attempt"] = "\(job.attempt)"
        return logger
    }

    /// Completes the job inside the handler's own transaction, so its writes and its
    /// completion commit together (exactly once, as far as the database is concerned). The
    /// worker then records nothing more for it.
    ///
    /// - Throws: ``PostgresLocks/PostgresLocksError/Code/leaseLost`` if the lease is gone.
    public func complete(in transaction: Transaction) async throws {
        try await queue.complete(job.lease, in: transaction)
        completedInTransaction.set()
    }
}

/// Set once a handler completed its job itself.
final class CompletionFlag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

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
