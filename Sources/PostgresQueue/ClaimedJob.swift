import Foundation
import PostgresLocks

/// Who holds a running job: its id and the token of the claim. Every transition after the
/// claim (complete, fail, extend, give back) names the lease, and the database refuses it
/// if the lease was reclaimed in the meantime.
public struct JobLease: Sendable, Hashable, Codable {
    /// The job's id.
    public var id: Int64
    /// The token written by the claim.
    public var token: UUID

    /// A lease on job `id` with `token`.
    public init(id: Int64, token: UUID) {
        self.id = id
        self.token = token
    }
}

/// A job claimed by a worker, with its lease.
public struct ClaimedJob: Sendable, Hashable {
    /// The lease: job id and claim token.
    public var lease: JobLease
    /// The queue it came from.
    public var queue: String
    /// Its kind.
    public var kind: String
    /// The payload as JSON text.
    public var payloadJSON: String
    /// Its priority.
    public var priority: Int16
    /// This attempt's number (1 for the first run).
    public var attempt: Int32
    /// Attempts allowed.
    public var maxAttempts: Int32
    /// Its unique key, if any.
    public var uniqueKey: String?
    /// When it was enqueued.
    public var createdAt: Date
    /// When it was scheduled to run.
    public var runAt: Date
    /// Its tags.
    public var tags: [String]
    /// Its metadata.
    public var metadata: [String: String]
    /// How many times a handler snoozed it (snoozes do not count as attempts).
    public var snoozes: Int32

    /// The job's id.
    public var id: Int64 { lease.id }

    /// Decodes the payload as `type`.
    ///
    /// - Throws: ``PostgresQueueError/Code/payloadCoding`` when it does not decode.
    public func decodePayload<Payload: Decodable>(as type: Payload.Type = Payload.self) throws -> Payload {
        try decodePayload(as: type, using: JSONDecoder())
    }

    func decodePayload<Payload: Decodable>(as type: Payload.Type, using decoder: JSONDecoder) throws -> Payload {
        do {
            return try decoder.decode(Payload.self, from: Data(payloadJSON.utf8))
        } catch {
            throw PostgresQueueError(
                code: .payloadCoding,
                message: "the payload of job \(id) (\(kind)) does not decode as \(Payload.self)",
                underlying: error
            )
        }
    }
}
