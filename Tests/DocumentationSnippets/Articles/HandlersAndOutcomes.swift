// The Swift blocks of the DocC article HandlersAndOutcomes.md.
import Foundation
import Logging
import PostgresLocks
import PostgresNIO
import PostgresQueue

/// What the article's handlers talk to (nothing here: the snippets are compiled, not run).
struct ArticleAccount: Sendable {
    var id: Int64
    var isLocked: Bool
}
struct ArticleAccounts: Sendable {
    func find(_ id: Int64) async throws -> ArticleAccount? { nil }
}
enum ArticleSyncResponse: Sendable {
    case throttled(Duration)
    case superseded
    case done(Int)
}
struct ArticleRemote: Sendable {
    func sync(_ account: ArticleAccount) async throws -> ArticleSyncResponse { .done(0) }
}
struct SyncResult: Encodable {
    var changed: Int
}
struct Payment: Decodable, Sendable {
    var id: Int64
    var cents: Int64
}
struct RenderThumbnail: JobDefinition {
    static let kind = "render-thumbnail"
    var imageID: Int64
}
struct ArticleThumbnails: Sendable {
    func render(_ imageID: Int64) async throws {}
}
struct Pager: Sendable {
    func notify(_ message: String) async {}
}

func articleHandlers(
    queue: JobQueue, client: PostgresClient, logger: Logger,
    accounts: ArticleAccounts, remote: ArticleRemote, thumbnails: ArticleThumbnails
) async throws -> JobHandlers {
    struct SyncAccount: JobDefinition {
        static let kind = "sync-account"
        static let queue = "sync"                 // default "default"
        static let maxAttempts: Int32 = 5         // default 20
        var accountID: Int64
    }

    try await queue.enqueue(try NewJob(SyncAccount(accountID: 42), tags: ["tenant:acme"], metadata: ["requested-by": "api"]), on: client, logger: logger)

    var handlers = JobHandlers()
    handlers.registerWithOutcome(SyncAccount.self) { job, context in
        guard let account = try await accounts.find(job.accountID) else { return .discard(reason: "account deleted") }
        if account.isLocked { return .snooze(for: .seconds(60)) }          // not counted as an attempt
        switch try await remote.sync(account) {
        case .throttled(let wait): return .retry(after: wait, reason: "throttled")
        case .superseded: return .cancel(reason: "a newer sync replaced it")
        case .done(let changes): return try .complete(output: SyncResult(changed: changes))
        }
    }

    handlers.register("record-payment") { (payment: Payment, context) in
        try await context.client.withCheckedTransaction(logger: context.logger) { tx in
            try await tx.query("INSERT INTO payments (id, cents) VALUES (\(payment.id), \(payment.cents))")
            try await context.complete(in: tx)      // throws leaseLost, rolling back the insert, if another worker owns the job now
        }
    }

    handlers.register(RenderThumbnail.self, settings: JobKindSettings(
        maxAttempts: 5,                                                 // instead of each job's own
        backoff: Backoff(initial: .seconds(2), maximum: .seconds(60)),  // instead of the worker's
        runTimeout: .seconds(30),
        maxRuntime: .seconds(120)
    )) { job, context in
        try await thumbnails.render(job.imageID)
    }
    return handlers
}

func articleMiddleware() -> JobHandlers {
    var handlers = JobHandlers()
    enum Tenant {
        @TaskLocal static var current: String?
    }

    /// Runs the job inside the tenant its enqueuer put in the metadata.
    struct TenantContext: JobMiddleware {
        func run(_ job: ClaimedJob, context: JobContext, next: JobMiddlewareNext) async throws -> JobOutcome {
            try await Tenant.$current.withValue(job.metadata["tenant"]) { try await next(job, context) }
        }
    }

    /// Logs how long each job took, the middleware inside it included.
    struct Timing: JobMiddleware {
        func run(_ job: ClaimedJob, context: JobContext, next: JobMiddlewareNext) async throws -> JobOutcome {
            let started = ContinuousClock.now
            let outcome = try await next(job, context)
            context.logger.info("job ran", metadata: ["duration": "\(ContinuousClock.now - started)"])
            return outcome
        }
    }

    handlers.use(Timing())           // added first: outermost
    handlers.use(TenantContext())    // inside Timing, around the handler, which reads Tenant.current
    return handlers
}

func articleObservers(pager: Pager) throws -> JobQueue {
    struct DeadJobAlert: JobLifecycleObserver {
        let pager: Pager
        func jobDead(_ job: ClaimedJob, reason: String) async {
            await pager.notify("job \(job.id) (\(job.kind)) is dead after \(job.attempt) attempts: \(reason)")
        }
    }

    let queue = try JobQueue(schema: "jobs", observers: [DeadJobAlert(pager: pager)])
    return queue
}
