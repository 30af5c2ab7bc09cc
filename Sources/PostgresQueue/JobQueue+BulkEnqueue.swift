import Foundation
import Logging
import NIOCore
import PostgresLocks
import PostgresNIO

extension JobQueue {
    /// Enqueues a large batch through `COPY … FROM STDIN`, streamed in chunks, in one
    /// transaction with one wake-up per queue: faster than ``enqueue(_:on:logger:)-([NewJob],_,_)``
    /// past a few thousand jobs, and without its batch limit. Every job is inserted or none.
    ///
    /// `COPY` cannot skip duplicates, so jobs with a unique key are refused here (enqueue those
    /// with ``enqueue(_:on:logger:)-([NewJob],_,_)``). Run times are the server's: the
    /// transaction reads its `now()` first and writes `.now` and `.after` schedules from it, as
    /// the statement form does.
    ///
    /// - Returns: how many jobs were inserted.
    /// - Throws: `PostgresLocksError.Code.invalidArgument` for an empty batch or a job with a
    ///   unique key; the server's error (nothing inserted) for a payload that is not JSON.
    @discardableResult
    public func enqueueByCopy(_ jobs: [NewJob], on client: PostgresClient, logger: Logger) async throws -> Int {
        guard !jobs.isEmpty else { throw PostgresLocksError(code: .invalidArgument, message: "no jobs to enqueue") }
        if let job = jobs.first(where: { $0.uniqueKey != nil }) {
            throw PostgresLocksError(
                code: .invalidArgument,
                message: "a \(job.kind) job has a unique key: COPY cannot skip duplicates; enqueue unique jobs with enqueue(_:on:logger:)"
            )
        }
        // Traced as the statement form is: the jobs carry the enqueue span's context.
        return try await tracedEnqueue(jobs, inserted: { $0 }) { jobs in
            try await copyIn(jobs, on: client, logger: logger)
        }
    }

    /// The `COPY` of ``enqueueByCopy(_:on:logger:)``, once the batch is checked.
    private func copyIn(_ jobs: [NewJob], on client: PostgresClient, logger: Logger) async throws -> Int {
        let queues = Array(Set(jobs.map(\.queue))).sorted()
        // PostgresNIO writes `COPY "<table>"`, quoting what it is given as one name: hand it
        // the qualified name without its outer quotes, so that it reads `"schema"."jobs"`
        // (identifiers are validated: letters, digits and underscores only).
        let table = String(jobsTable.quoted.dropFirst().dropLast())
        let count = try await client.withCheckedTransaction(logger: logger) { tx in
            let now = try await tx.query("SELECT now()").rows[0].decode(Date.self)
            try await tx.connection.copyFrom(
                table: table,
                columns: ["queue", "kind", "payload", "priority", "run_at", "max_attempts", "tags", "metadata"],
                logger: logger
            ) { writer in
                var buffer = ByteBuffer()
                let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
                let nowText = style.format(now)
                for job in jobs {
                    buffer.writeString(Self.copyRow(job, now: now, nowText: nowText, style: style))
                    if buffer.readableBytes >= 256 * 1024 {
                        try await writer.write(buffer)
                        buffer.clear()
                    }
                }
                if buffer.readableBytes > 0 { try await writer.write(buffer) }
            }
            try await tx.query("SELECT pg_notify(\(channel.name), q) FROM unnest(\(queues)::text[]) AS q")
            return jobs.count
        }
        await notifyEnqueued(jobs, result: EnqueueResult(ids: [], skippedUniqueKeys: []))
        return count
    }

    /// One job as a `COPY` text row, its run time computed from the transaction's `now`.
    static func copyRow(_ job: NewJob, now: Date, nowText: String, style: Date.ISO8601FormatStyle) -> String {
        var row = CopyTextRow()
        row.append(job.queue)
        row.append(job.kind)
        row.append(job.payloadJSON)
        row.append(String(job.priority))
        switch job.schedule {
        case .now: row.append(nowText)
        case .after(let delay): row.append(style.format(now.addingTimeInterval(Double(Backoff.milliseconds(delay)) / 1000)))
        case .at(let date): row.append(style.format(date))
        }
        row.append(String(job.maxAttempts))
        row.appendArray(job.tags)
        row.append(job.metadata.isEmpty ? "{}" : JobMetadata.encode(job.metadata))
        row.endRow()
        return row.text
    }
}
