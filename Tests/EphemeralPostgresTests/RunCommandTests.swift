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

@Suite("pglock run")
struct RunCommandTests {
    private func pglockRun(_ arguments: [String], url: String) async throws -> (status: Int32, output: String) {
        let result = try await Subprocess.run(
            .path(FilePath(try pglockExecutable())),
            arguments: Arguments(["run", "--database-url", url] + arguments),
            output: .string(limit: 1 << 16), error: .string(limit: 1 << 16)
        )
        guard case .exited(let code) = result.terminationStatus else { return (-1, "") }
        return (code, result.standardOutput + result.standardError)
    }

    @Test func exitCodeIsTheCommandsAndHeldLockGivesTheDocumentedCode() async throws {
        try await TestDatabase.withDatabase { db in
            let url = db.settings.redactedURL
            let ran = try await pglockRun(["--lock", "job-1", "--", "sh", "-c", "exit 3"], url: url)
            #expect(ran.status == 3)

            // Hold the same name from plain SQL with seed 002's hash: pglock must not get it.
            let other = try await db.makeConnection()
            defer { Task { try? await other.close() } }
            _ = try await other.query("SELECT pg_advisory_lock(\(LockKey.hashed("job-1").int64Value!))", logger: db.logger).collect()
            let tried = try await pglockRun(["--lock", "job-1", "--try", "--", "echo", "never"], url: url)
            #expect(tried.status == 75)
            #expect(!tried.output.contains("never"))
            let timed = try await pglockRun(["--lock", "job-1", "--timeout", "200ms", "--", "echo", "never"], url: url)
            #expect(timed.status == 75)
            #expect(timed.output.contains("not acquired"))
            #expect(try await db.scalar("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", as: Int.self) == 1)
        }
    }
}
