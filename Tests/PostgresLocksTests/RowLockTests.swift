import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Testing

@Suite("Row locks and lock_timeout")
struct RowLockTests {
    @Test func clausesRenderFromValidatedParts() throws {
        #expect(RowLock().sql == "FOR UPDATE")
        #expect(try RowLock(.noKeyUpdate, of: ["jobs", "j2"], waiting: .skipLocked).sql == #"FOR NO KEY UPDATE OF "jobs", "j2" SKIP LOCKED"#)
        #expect(RowLock(.share, waiting: .noWait).sql == "FOR SHARE NOWAIT")
        #expect(RowLock(.keyShare).sql == "FOR KEY SHARE")
        #expect(throws: PostgresLocksError.self) { try RowLock(.update, of: ["jobs; DROP TABLE jobs"]) }
        #expect(throws: PostgresLocksError.self) { try RowLock(.update, of: ["public.jobs"]) }
    }

    @Test func noWaitOnALockedRowGivesLockNotAvailable() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 6) { db in
            try await db.query("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)")
            try await db.query("INSERT INTO accounts VALUES (1, 10)")
            let holder = try await db.makeConnection()
            defer { Task { try? await holder.close() } }
            try await holder.withCheckedTransaction(logger: db.logger) { tx in
                try await tx.query("SELECT * FROM accounts WHERE id = 1 \(rowLock: RowLock(.update))")
                for strength in [RowLock.Strength.update, .noKeyUpdate, .share] {
                    let error = await #expect(throws: PostgresLocksError.self) {
                        try await db.client.withCheckedTransaction(logger: db.logger) { other in
                            try await other.query("SELECT * FROM accounts WHERE id = 1 \(rowLock: RowLock(strength, waiting: .noWait))")
                        }
                    }
                    #expect(error?.code == .lockNotAvailable)
                }
                // KEY SHARE is compatible with FOR UPDATE? No: only with NO KEY UPDATE and weaker.
                let keyShare = await #expect(throws: PostgresLocksError.self) {
                    try await db.client.withCheckedTransaction(logger: db.logger) { other in
                        try await other.query("SELECT * FROM accounts WHERE id = 1 \(rowLock: RowLock(.keyShare, waiting: .noWait))")
                    }
                }
                #expect(keyShare?.code == .lockNotAvailable)
            }
            try await holder.withCheckedTransaction(logger: db.logger) { tx in
                try await tx.query("SELECT * FROM accounts WHERE id = 1 \(rowLock: RowLock(.noKeyUpdate))")
                // FOR KEY SHARE goes on beside FOR NO KEY UPDATE (why queues use the latter).
                try await db.client.withCheckedTransaction(logger: db.logger) { other in
                    try await other.query("SELECT * FROM accounts WHERE id = 1 \(rowLock: RowLock(.keyShare, waiting: .noWait))")
                }
            }
        }
    }

    @Test func skipLockedWorkersClaimDisjointRows() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 12) { db in
            try await db.query("CREATE TABLE jobs (id int PRIMARY KEY, claimed_by int, claims int NOT NULL DEFAULT 0)")
            try await db.query("INSERT INTO jobs (id) SELECT g FROM generate_series(1, 2000) g")
            let claim = try RowLock(.noKeyUpdate, of: ["jobs"], waiting: .skipLocked)
            let perWorker = try await withThrowingTaskGroup(of: Int.self) { group in
                for worker in 1...8 {
                    group.addTask {
                        var claimed = 0
                        while true {
                            let count = try await db.client.withCheckedTransaction(logger: db.logger) { tx in
                                let ids = try await tx.query("""
                                    SELECT id FROM jobs WHERE claimed_by IS NULL ORDER BY id LIMIT 10 \(rowLock: claim)
                                    """).rows.map { try $0.decode(Int32.self) }
                                if !ids.isEmpty {
                                    try await tx.query("UPDATE jobs SET claimed_by = \(worker), claims = claims + 1 WHERE id = ANY(\(ids))")
                                }
                                return ids.count
                            }
                            if count == 0 { break }
                            claimed += count
                        }
                        return claimed
                    }
                }
                var all: [Int] = []
                for try await count in group { all.append(count) }
                return all
            }
            #expect(perWorker.reduce(0, +) == 2000)
            #expect(try await db.scalar("SELECT count(*)::int FROM jobs WHERE claims <> 1 OR claimed_by IS NULL", as: Int.self) == 0)
            #expect(perWorker.filter { $0 > 0 }.count > 1, "work should spread over workers")
        }
    }

    @Test func lockTimeoutEndsTheWaitAndDoesNotLeakIntoThePool() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 1) { db in
            try await db.query("CREATE TABLE accounts (id int PRIMARY KEY)")
            try await db.query("INSERT INTO accounts VALUES (1)")
            let holder = try await db.makeConnection()
            defer { Task { try? await holder.close() } }
            try await holder.withCheckedTransaction(logger: db.logger) { tx in
                try await tx.query("SELECT * FROM accounts \(rowLock: RowLock())")
                let started = ContinuousClock.now
                let error = await #expect(throws: PostgresLocksError.self) {
                    try await db.client.withCheckedTransaction(logger: db.logger) { other in
                        try await other.setLockTimeout(.milliseconds(150))
                        try await other.query("SELECT * FROM accounts \(rowLock: RowLock())")
                    }
                }
                #expect(error?.code == .lockNotAvailable)
                #expect(ContinuousClock.now - started >= .milliseconds(150))
            }
            // The pool has one connection: the same one must be back at the server default.
            #expect(try await db.scalar("SELECT current_setting('lock_timeout')", as: String.self) == "0")
            await #expect(throws: PostgresLocksError.self) {
                try await db.client.withCheckedTransaction(logger: db.logger) { tx in try await tx.setLockTimeout(.zero) }
            }
        }
    }
}
