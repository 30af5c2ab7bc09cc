#if canImport(Glibc)
import Glibc
#endif
import Foundation
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Subprocess
import Testing
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// A client process killed outright while it holds session locks. (A queue worker process
/// killed while it holds a job's lease: EphemeralPostgresTests/QueueFaultTests, the lease is
/// reclaimed and the job completed once.)
@Suite("Faults: a lock-holding process killed with SIGKILL")
struct ProcessKillTests {
    @Test func sessionLocksOfAKilledPglockRunAreFreeOnceTheServerNotices() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let keys = ["nightly-report", "7:42", "-9000"]
            // Three `pglock run` processes, each holding one key while its command waits.
            let killed = try await withThrowingTaskGroup(of: Int32.self) { group in
                for key in keys {
                    group.addTask { try await holdThenKill(key: key, db: db) }
                }
                return try await group.reduce(into: [Int32]()) { $0.append($1) }
            }
            #expect(killed.count == 3)
            // The kernel closed the killed processes' sockets: the server ends those sessions
            // and frees their locks.
            let killedAt = ContinuousClock.now
            try await waitUntil(timeout: .seconds(20), "the killed processes' locks are free") {
                try await advisoryLocksInDatabase(db) == 0
            }
            print("── pglock run killed with SIGKILL\n3 processes killed holding 3 session locks; all free \(ContinuousClock.now - killedAt) after the last kill")
            for key in keys {
                let free = try await db.scalar(tryLockQuery(try LockKey(text: key)), as: Bool.self)
                #expect(free, "lock \(key) is free")
            }
            _ = try await db.query("SELECT pg_advisory_unlock_all()")
        }
    }
}

/// Starts `pglock run --lock KEY -- sh -c 'echo held $$; exec tail -f /dev/null'`, waits for
/// the line, checks that the lock is held by a `pglock run` session, kills pglock with SIGKILL,
/// and ends the orphaned command. Returns the command's pid.
private func holdThenKill(key: String, db: TestContext) async throws -> Int32 {
    let lockKey = try LockKey(text: key)
    let result = try await Subprocess.run(
        .path(FilePath(try pglockExecutable())),
        arguments: ["run", "--lock=\(key)", "--database-url", db.settings.redactedURL, "--", "sh", "-c", "echo held $$; exec tail -f /dev/null"],
        input: .none, output: .sequence, error: .discarded
    ) { execution in
        var line = Data()
        outer: for try await chunk in execution.standardOutput {
            for byte in chunk.withUnsafeBytes({ Array($0) }) {
                if byte == 0x0A { break outer }
                line.append(byte)
            }
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("held "), let child = Int32(text.dropFirst(5)) else { throw TestFailure("unexpected output: \(text)") }
        let holders = try await db.scalar("""
            SELECT count(*)::int FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'pglock run'
              AND l.classid::int8 = \(Int64(lockKey.pgLocksIdentity.classid)) AND l.objid::int8 = \(Int64(lockKey.pgLocksIdentity.objid)) AND l.objsubid = \(lockKey.pgLocksIdentity.objsubid)
            """, as: Int.self)
        #expect(holders == 1, "pglock holds \(key)")
        try execution.send(signal: .kill)
        // pglock died without a word to its command, which would live on as an orphan: end it.
        kill(child, SIGKILL)
        return child
    }
    return result.closureResult
}

/// `SELECT pg_try_advisory_lock(…)` for `key`, in plain SQL.
func tryLockQuery(_ key: LockKey) -> PostgresQuery {
    if let pair = key.pairValue { return "SELECT pg_try_advisory_lock(\(pair.namespace), \(pair.id))" }
    return "SELECT pg_try_advisory_lock(\(key.int64Value!))"
}
