import Foundation
import Logging
import PostgresLocks
import PostgresNIO
import Synchronization

/// The handlers of a worker, one per job kind, each decoding its own `Codable` payload, with
/// the kind's settings and the middleware every job runs through.
///
/// ```swift
/// var handlers = JobHandlers()
/// handlers.register("send-email") { (email: Email, context) in
///     try await mailer.send(email)
/// }
/// ```
public struct JobHandlers: Sendable {
    typealias Handler = @Sendable (ClaimedJob, JobContext) async throws -> JobOutcome
    struct Entry: Sendable {
        var handler: Handler
        var settings: JobKindSettings
    }

    private(set) var entries: [String: Entry] = [:]
    private(set) var middleware: [any JobMiddleware] = []
    private(set) var invalidSettings: [String: PostgresLocksError] = [:]

    /// No handlers yet.
    public init() {}

    /// Runs `handler` for jobs of `kind`, with the payload decoded as `Payload`; the handler
    /// decides the outcome. A payload that does not decode fails the job at once as dead (it
    /// would not decode on a retry either), with the error recorded; the worker goes on.
    ///
    /// ```swift
    /// handlers.registerWithOutcome("sync-account") { (account: AccountRef, context) in
    ///     if try await remote.isBusy(account.id) { return .snooze(for: .seconds(30)) }
    ///     return .complete
    /// }
    /// ```
    public mutating func registerWithOutcome<Payload: Decodable & SendableMetatype>(
        _ kind: String,
        as payload: Payload.Type = Payload.self,
        settings: JobKindSettings = JobKindSettings(),
        _ handler: @escaping @Sendable (Payload, JobContext) async throws -> JobOutcome
    ) {
        let decoder = JSONDecoder()  // one per kind: made once, not per job
        do {
            try settings.validate(kind: kind)
        } catch let error as PostgresLocksError {
            invalidSettings[kind] = error
        } catch {}
        entries[kind] = Entry(handler: { job, context in
            let decoded = try job.decodePayload(as: Payload.self, using: decoder)
            return try await handler(decoded, context)
        }, settings: settings)
    }

    /// Runs `handler` for jobs of `kind`; a handler that returns completes its job, one that
    /// throws fails the attempt.
    public mutating func register<Payload: Decodable & SendableMetatype>(
        _ kind: String,
        as payload: Payload.Type = Payload.self,
        settings: JobKindSettings = JobKindSettings(),
        _ handler: @escaping @Sendable (Payload, JobContext) async throws -> Void
    ) {
        registerWithOutcome(kind, as: payload, settings: settings) { (decoded: Payload, context: JobContext) -> JobOutcome in
            try await handler(decoded, context)
            return .complete
        }
    }

    /// Runs `handler` for jobs of a ``JobDefinition`` type; the handler decides the outcome.
    public mutating func registerWithOutcome<Definition: JobDefinition & SendableMetatype>(
        _ type: Definition.Type,
        settings: JobKindSettings = JobKindSettings(),
        _ handler: @escaping @Sendable (Definition, JobContext) async throws -> JobOutcome
    ) {
        registerWithOutcome(Definition.kind, as: Definition.self, settings: settings, handler)
    }

    /// Runs `handler` for jobs of a ``JobDefinition`` type; returning completes the job.
    public mutating func register<Definition: JobDefinition & SendableMetatype>(
        _ type: Definition.Type,
        settings: JobKindSettings = JobKindSettings(),
        _ handler: @escaping @Sendable (Definition, JobContext) async throws -> Void
    ) {
        register(Definition.kind, as: Definition.self, settings: settings, handler)
    }

    /// Adds middleware around every job (the first added runs outermost).
    public mutating func use(_ middleware: any JobMiddleware) {
        self.middleware.append(middleware)
    }

    /// The kinds with a handler.
    public var kinds: [String] { entries.keys.sorted() }

    /// The kind's settings (defaults for a kind without a handler).
    public func settings(of kind: String) -> JobKindSettings { entries[kind]?.settings ?? JobKindSettings() }

    /// The handler of `job`'s kind wrapped in the middleware, or `nil` when none is registered.
    func chain(for kind: String) -> Handler? {
        guard let entry = entries[kind] else { return nil }
        var next: Handler = entry.handler
        for middleware in self.middleware.reversed() {
            let inner = next
            next = { job, context in try await middleware.run(job, context: context, next: inner) }
        }
        return next
    }
}
