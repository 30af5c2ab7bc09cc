#if canImport(Glibc)
import Glibc
#endif
import EphemeralPostgres
import Foundation
import Logging
import PostgresLocksTestSupport
import PostgresNIO
import PglockHarness
import Subprocess
import Testing
#if canImport(System)
import System
#else
import SystemPackage
#endif

@Suite("EphemeralPostgres", .serverSlot)
struct EphemeralPostgresTests {
    @Test func startsServesQueriesAndLeavesNoProcessOrFolderAfterShutdown() async throws {
        let server = try await EphemeralPostgres.start(.init(disableDurability: true))
        let pid = try #require(server.postmasterPID)
        #expect(processExists(pid))
        #expect(FileManager.default.fileExists(atPath: server.dataDirectory))
        if geteuid() == 0 {
            // As root, initdb and the server ran as the unprivileged user, who owns the folder.
            let attributes = try FileManager.default.attributesOfItem(atPath: server.dataDirectory)
            #expect((attributes[.ownerAccountName] as? String) == "postgres")
        }
        #expect(try await answer(server) == 42)

        await server.shutdown()
        #expect(!FileManager.default.fileExists(atPath: server.baseDirectory))
        try await waitUntil("the postmaster has exited") { !processExists(pid) }
        // Shutting down twice is harmless.
        await server.shutdown()
    }

    @Test func serverCanBeStoppedAndStartedOnTheSameDataDirectory() async throws {
        try await EphemeralPostgres.withServer(.init(disableDurability: false)) { server in
            try await run(server, "CREATE TABLE kept (n int)")
            try await run(server, "INSERT INTO kept VALUES (7)")
            let firstPID = try #require(server.postmasterPID)
            try await server.stopServer()
            #expect(server.postmasterPID == nil)
            try await server.startServer()
            #expect(server.postmasterPID != firstPID)
            #expect(try await scalar(server, "SELECT n FROM kept") == 7)
        }
    }

    @Test func startsAsAnUnprivilegedUserAndLeavesNothingBehind() async throws {
        // As root, run the pglock binary as the `postgres` user: EphemeralPostgres then runs
        // without dropping privileges. As a non-root user, the test above already covers it.
        guard geteuid() == 0, let entry = getpwnam("postgres") else { return }
        // Through setpriv (posix_spawn), not swift-subprocess's user switch (fork in a threaded process).
        let result = try await Subprocess.run(
            .path(FilePath("/usr/bin/setpriv")),
            arguments: ["--reuid=\(entry.pointee.pw_uid)", "--regid=\(entry.pointee.pw_gid)", "--clear-groups", "--", try pglockExecutable(), "ephemeral"],
            environment: .inherit.updating(["HOME": "/tmp"]),
            workingDirectory: FilePath("/tmp"),
            output: .string(limit: 1 << 16), error: .string(limit: 1 << 16)
        )
        #expect(result.terminationStatus.isSuccess, "pglock ephemeral failed: \(result.standardError)")
        let report = try JSONDecoder().decode(EphemeralReport.self, from: Data(result.standardOutput.utf8))
        #expect(report.userID == entry.pointee.pw_uid)
        #expect(report.answer == 42)
        #expect(!FileManager.default.fileExists(atPath: report.baseDirectory))
        if let pid = report.postmasterPID {
            try await waitUntil("the postmaster has exited") { !processExists(pid) }
        }
    }

    @Test func serverAndFolderAreRemovedWhenTheOwningProcessIsKilled() async throws {
        // `pglock ephemeral --hold` starts a server and waits; SIGKILL gives it no chance to clean
        // up, so only the watchdog (which sees its lifeline pipe close) can remove the server.
        let report = try await Subprocess.run(
            .path(FilePath(try pglockExecutable())), arguments: ["ephemeral", "--hold"],
            workingDirectory: FilePath("/tmp"),
            input: .none, output: .sequence, error: .discarded
        ) { execution in
            let line = try await firstLine(of: execution.standardOutput)
            let report = try JSONDecoder().decode(EphemeralReport.self, from: Data(line.utf8))
            #expect(report.answer == 42)
            #expect(FileManager.default.fileExists(atPath: report.baseDirectory))
            try execution.send(signal: .kill)
            return report
        }.closureResult
        let pid = try #require(report.postmasterPID)
        try await waitUntil(timeout: .seconds(30), "the watchdog stopped the server") { !processExists(pid) }
        try await waitUntil(timeout: .seconds(30), "the watchdog removed the folder") {
            !FileManager.default.fileExists(atPath: report.baseDirectory)
        }
    }

    @Test func missingBinariesErrorSaysWhatToInstall() throws {
        let error = #expect(throws: EphemeralPostgresError.self) {
            try PostgresBinaries.locate(searchPath: ["/nonexistent/bin", ""])
        }
        #expect(error?.code == .binariesNotFound)
        let text = error?.description ?? ""
        #expect(text.contains("apt-get install postgresql"))
        #expect(text.contains("DATABASE_URL"))
    }

    @Test func startFailsReadablyWithoutBinariesAndLeavesNoFolder() async throws {
        let parent = "/tmp/pglocks-test-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: parent) }
        await #expect(throws: EphemeralPostgresError.self) {
            _ = try await EphemeralPostgres.start(.init(searchPath: ["/nonexistent/bin"], temporaryDirectoryParent: parent))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent).isEmpty)
    }

    @Test func badSettingsAreRejectedBeforeAnythingStarts() async throws {
        for settings in [["bad name": "1"], ["search_path": "a\nfsync = off"], ["x'": "1"]] {
            await #expect(throws: EphemeralPostgresError.self) {
                _ = try await EphemeralPostgres.start(.init(settings: settings))
            }
        }
    }
}

/// What `pglock ephemeral` prints (the command's own report type).

func processExists(_ pid: Int32) -> Bool {
    // A zombie (exited, not yet reaped by its parent) no longer serves anything.
    guard kill(pid, 0) == 0 else { return false }
    let status = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
    return !status.contains(") Z ")
}

private func withClient<T: Sendable>(_ server: EphemeralPostgres, _ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
    let client = PostgresClient(configuration: server.clientConfiguration(), backgroundLogger: TestDatabase.backgroundLogger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await client.run() }
        defer { group.cancelAll() }
        return try await body(client)
    }
}

private func answer(_ server: EphemeralPostgres) async throws -> Int {
    try await scalar(server, "SELECT 6 * 7")
}

private func scalar(_ server: EphemeralPostgres, _ sql: String) async throws -> Int {
    try await withClient(server) { client in
        try await client.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger).collect()[0].decode(Int.self)
    }
}

private func run(_ server: EphemeralPostgres, _ sql: String) async throws {
    try await withClient(server) { client in
        try await client.withConnection { connection in
            _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger).collect()
        }
    }
}
