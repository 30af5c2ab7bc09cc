// The Swift blocks of the DocC article UniqueJobs.md.
import Logging
import PostgresLocks
import PostgresNIO
import PostgresQueue

/// The payload of the article's welcome mail.
struct ArticleWelcome: Codable, Sendable {
    var userID: Int64
}

func articleUniqueJobs(
    queue: JobQueue, client: PostgresClient, logger: Logger,
    requestID: String, customerIDs: [Int64], welcome: ArticleWelcome, userID: Int64
) async throws {
    struct CustomerReport: JobDefinition {
        static let kind = "customer-report"
        var customerID: Int64
        var format: String
        var requestID: String
    }

    // At most one report per customer per hour, even once the first has completed: the format and
    // the request id do not make a job different.
    let hourly = UniqueOptions(byFields: ["customerID"], period: .seconds(3600))
    let result = try await queue.enqueue(
        try NewJob(CustomerReport(customerID: 42, format: "pdf", requestID: requestID), unique: hourly),
        on: client, logger: logger
    )
    if result.ids.isEmpty {
        logger.info("this customer's report is already queued, running or done this hour")
    }

    try await queue.enqueue(try NewJob(kind: "send-welcome", payload: welcome, uniqueKey: "welcome:\(userID)"), on: client, logger: logger)

    do {
        let jobs = try customerIDs.map { try NewJob(CustomerReport(customerID: $0, format: "csv", requestID: requestID), unique: hourly) }
        let result = try await queue.enqueue(jobs, on: client, logger: logger)
        let skipped = Set(result.skippedUniqueKeys)
        let alreadyQueued = jobs.filter { job in job.uniqueKey.map(skipped.contains) ?? false }
        _ = alreadyQueued
    }
}
