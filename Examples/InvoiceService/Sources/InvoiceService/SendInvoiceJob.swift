import Logging
import PostgresLocks
import PostgresQueue

/// The `send-invoice` job: enqueued in the transaction that creates an invoice, it "sends" the
/// invoice (here: logs it) and marks it `sent_at`, completing the job in the same transaction
/// so the mark and the completion commit together.
struct SendInvoiceJob: Codable, Sendable, Hashable {
    /// The job kind the worker handles.
    static let kind = "send-invoice"
    /// The queue the jobs go to.
    static let queueName = "invoices"

    /// The invoice's tenant.
    var tenant: String
    /// The invoice's number.
    var number: Int64

    /// The job to enqueue for this invoice. Its unique key keeps a second job for the same
    /// invoice out while one is waiting or running.
    func newJob() throws -> NewJob {
        try NewJob(kind: Self.kind, payload: self, queue: Self.queueName, uniqueKey: "\(tenant)/\(number)")
    }

    /// Registers the handler for `send-invoice` jobs.
    static func register(in handlers: inout JobHandlers, store: InvoiceStore) {
        handlers.register(kind) { (job: SendInvoiceJob, context: JobContext) in
            try await job.run(store: store, context: context)
        }
    }

    /// Sends the invoice once: marks it sent and completes the job in one transaction. If the
    /// worker dies before the commit, neither happened and the job runs again after its lease.
    func run(store: InvoiceStore, context: JobContext) async throws {
        let logger = context.logger
        try await context.client.withCheckedTransaction(logger: logger) { tx in
            if try await store.markSent(tenant: tenant, number: number, in: tx) {
                // A real service would hand the invoice to a mailer here, idempotently (the
                // job may run again if this transaction does not commit).
                logger.info("invoice sent", metadata: ["tenant": "\(tenant)", "number": "\(number)"])
            } else {
                logger.notice("invoice already sent or unknown; nothing to do", metadata: ["tenant": "\(tenant)", "number": "\(number)"])
            }
            try await context.complete(in: tx)
        }
    }
}
