import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import PostgresQueue
import Testing

@Suite("PostgresQueue bulk enqueue")
struct QueueBulkTests {
    @Test func copyEnqueuesEveryJobWithItsPayloadTagsMetadataAndScheduleIntact() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let queue = try await makeQueue(db)
            let awkward = #"{"text": "tab\there, newline\nthere, back\\slash, quote \" and é"}"#
            var jobs = try (0..<20_000).map { try NewJob(kind: "work", payload: Work(n: $0)) }
            jobs.append(try NewJob(kind: "odd", payloadJSON: awkward, priority: -3, tags: [#"a "quoted" tag"#, "b\\c"], metadata: ["tenant": "a\tb"]))
            jobs.append(try NewJob(kind: "later", payloadJSON: "{}", schedule: .after(.seconds(3600))))
            #expect(try await queue.enqueueByCopy(jobs, on: db.client, logger: db.logger) == 20_002)
            #expect(try await db.scalar("SELECT count(*)::int FROM q.all_jobs WHERE kind = 'work'", as: Int.self) == 20_000)
            #expect(try await db.scalar("SELECT sum((payload->>'n')::int8)::int8 FROM q.all_jobs WHERE kind = 'work'", as: Int64.self) == Int64(19_999 * 20_000 / 2))
            let (payload, priority, tags, tenant) = try await db.query("SELECT payload::text, priority, tags, metadata->>'tenant' FROM q.all_jobs WHERE kind = 'odd'")[0]
                .decode((String, Int16, [String], String).self)
            #expect(try JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: String] == ["text": "tab\there, newline\nthere, back\\slash, quote \" and é"])
            #expect(priority == -3 && tags == [#"a "quoted" tag"#, "b\\c"] && tenant == "a\tb")
            // Run times are the server's: `.now` at the transaction's now(), `.after` from it.
            #expect(try await db.scalar("SELECT count(*)::int FROM q.all_jobs WHERE run_at <= now()", as: Int.self) == 20_001)
            #expect(try await db.scalar("SELECT (run_at - created_at BETWEEN interval '3599 seconds' AND interval '3601 seconds') FROM q.all_jobs WHERE kind = 'later'", as: Bool.self))
        }
    }

    @Test func aBadRowInsertsNothingAndUniqueJobsAreRefused() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let queue = try await makeQueue(db)
            var jobs = try (0..<1_000).map { try NewJob(kind: "work", payload: Work(n: $0)) }
            jobs.append(try NewJob(kind: "broken", payloadJSON: "{not json"))
            await #expect(throws: (any Error).self) { try await queue.enqueueByCopy(jobs, on: db.client, logger: db.logger) }
            #expect(try await db.scalar("SELECT count(*)::int FROM q.all_jobs", as: Int.self) == 0)
            await #expect(throws: PostgresLocksError.self) {
                try await queue.enqueueByCopy([try NewJob(kind: "u", uniqueKey: "k")], on: db.client, logger: db.logger)
            }
            await #expect(throws: PostgresLocksError.self) { try await queue.enqueueByCopy([], on: db.client, logger: db.logger) }
            // The connection that carried the failed COPY is usable again.
            #expect(try await queue.enqueueByCopy([try NewJob(kind: "work", payload: Work(n: 1))], on: db.client, logger: db.logger) == 1)
        }
    }
}
