#if canImport(Glibc)
import Glibc
#endif
@testable import EphemeralPostgres
import Foundation
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

/// The throwaway PgBouncer: served queries, real pooling in each mode, and cleanup.
@Suite("EphemeralPgBouncer", .serverSlot)
struct EphemeralPgBouncerTests {
    @Test(.needsPgBouncer)
    func queryThroughTransactionPoolingIsAnswered() async throws {
        try await TestPgBouncer.withPooler(mode: .transaction) { pooled in
            #expect(pooled.mode == .transaction)
            #expect(pooled.pooler.url(database: pooled.database) == "postgresql://postgres@127.0.0.1:\(pooled.pooler.port)/\(pooled.database)?sslmode=disable")
            #expect(try await pooled.scalar("SELECT 6 * 7", as: Int.self) == 42)
            let answer = try await pooled.scalar("SELECT \(41)::int8 + 1", as: Int.self)
            #expect(answer == 42)
            #expect(try await pooled.scalar("SELECT current_database()", as: String.self) == pooled.database)
            // The connection really goes through the pooler: the server sees a Unix-socket client.
            #expect(try await pooled.scalar("SELECT inet_client_addr() IS NULL", as: Bool.self))
        }
    }

    @Test(.needsPgBouncer)
    func queryThroughSessionPoolingIsAnswered() async throws {
        try await TestPgBouncer.withPooler(mode: .session) { pooled in
            let answer = try await pooled.scalar("SELECT 6 * 7", as: Int.self)
            let database = try await pooled.scalar("SELECT current_database()", as: String.self)
            #expect(answer == 42)
            #expect(database == pooled.database)
        }
    }

    @Test(.needsPgBouncer)
    func queryThroughStatementPoolingIsAnswered() async throws {
        try await TestPgBouncer.withPooler(mode: .statement) { pooled in
            let answer = try await pooled.scalar("SELECT 6 * 7", as: Int.self)
            #expect(answer == 42)
        }
    }

    @Test(.needsPgBouncer)
    func transactionPoolingServesTwoClientConnectionsWithOneServerProcess() async throws {
        try await TestPgBouncer.withPooler(mode: .transaction, poolSize: 1) { pooled in
            try await pooled.withConnections(2) { connections in
                var seen: [Int32] = []
                for _ in 0..<3 {
                    for connection in connections {
                        seen.append(try await backendPID(connection))
                    }
                }
                // Both client connections stay open, yet one server process serves them all.
                #expect(Set(seen).count == 1, "server processes seen: \(seen)")
            }
        }
    }

    @Test(.needsPgBouncer)
    func sessionPoolingKeepsEachClientOnItsServerProcessAcrossTransactions() async throws {
        try await TestPgBouncer.withPooler(mode: .session, poolSize: 2) { pooled in
            try await pooled.withConnections(2) { connections in
                var seen: [[Int32]] = [[], []]
                for _ in 0..<3 {
                    for (index, connection) in connections.enumerated() {
                        _ = try await connection.query("BEGIN", logger: pooled.logger).collect()
                        seen[index].append(try await backendPID(connection))
                        _ = try await connection.query("COMMIT", logger: pooled.logger).collect()
                    }
                }
                #expect(Set(seen[0]).count == 1, "first client's server processes: \(seen[0])")
                #expect(Set(seen[1]).count == 1, "second client's server processes: \(seen[1])")
                #expect(seen[0][0] != seen[1][0])
            }
        }
    }

    @Test(.needsPgBouncer)
    func shutdownStopsThePoolerRemovesItsFolderAndClosesThePort() async throws {
        let server = try #require(try await TestDatabase.server().ephemeral)
        let pooler = try await EphemeralPgBouncer.start(in: server, poolMode: .transaction, logger: TestDatabase.logger)
        let pid = try #require(pooler.pid)
        #expect(processExists(pid))
        #expect(FileManager.default.fileExists(atPath: pooler.configurationFile))
        #expect(canConnect(port: pooler.port))
        if geteuid() == 0 {
            // As root, the pooler (which refuses root) runs as the unprivileged user.
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            let uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }?.split(separator: "\t").dropFirst().first
            #expect(uid.map(String.init) == getpwnam("postgres").map { String($0.pointee.pw_uid) })
        }

        await pooler.shutdown()
        #expect(pooler.isShutDown)
        #expect(!FileManager.default.fileExists(atPath: pooler.baseDirectory))
        #expect(!processExists(pid))
        #expect(!canConnect(port: pooler.port))
        // Shutting down twice is harmless, and the server behind it is untouched.
        await pooler.shutdown()
        #expect(!server.isShutDown)
    }

    @Test(.needsPgBouncer)
    func poolerAndFolderAreRemovedWhenTheOwningProcessIsKilled() async throws {
        // `pglock ephemeral --hold --pgbouncer transaction` starts a server and a pooler and waits;
        // SIGKILL gives it no chance to clean up, so only the watchdogs can remove them.
        let report = try await Subprocess.run(
            .path(FilePath(try pglockExecutable())), arguments: ["ephemeral", "--hold", "--pgbouncer", "transaction"],
            workingDirectory: FilePath("/tmp"),
            input: .none, output: .sequence, error: .discarded
        ) { execution in
            let line = try await firstLine(of: execution.standardOutput)
            let report = try JSONDecoder().decode(EphemeralReport.self, from: Data(line.utf8))
            #expect(report.pgbouncerAnswer == 42)
            try execution.send(signal: .kill)
            return report
        }.closureResult
        let pid = try #require(report.pgbouncerPID)
        let directory = try #require(report.pgbouncerDirectory)
        let url = try #require(report.pgbouncerURL.flatMap(URLComponents.init(string:)))
        let port = try #require(url.port)
        try await waitUntil(timeout: .seconds(30), "the watchdog stopped the pooler") { !processExists(pid) }
        try await waitUntil(timeout: .seconds(30), "the watchdog removed the pooler's folder") {
            !FileManager.default.fileExists(atPath: directory)
        }
        #expect(!canConnect(port: port))
        if let postmaster = report.postmasterPID {
            try await waitUntil(timeout: .seconds(30), "the watchdog stopped the server") { !processExists(postmaster) }
        }
    }

    @Test func missingPgBouncerErrorSaysWhatToInstall() throws {
        let error = #expect(throws: EphemeralPostgresError.self) {
            try EphemeralPgBouncer.locateExecutable(searchPath: ["/nonexistent/bin", ""])
        }
        #expect(error?.code == .pgbouncerNotFound)
        #expect(error?.description.contains("apt-get install pgbouncer") == true)
    }

    @Test func searchPathEndsWithDebiansFolder() {
        #expect(EphemeralPgBouncer.searchPath(environment: ["PATH": "/usr/bin:/bin"]) == ["/usr/bin", "/bin", "/usr/sbin"])
        #expect(EphemeralPgBouncer.searchPath(environment: [:]) == ["/usr/sbin"])
    }

    @Test func configurationPassesEveryDatabaseThroughAndRejectsBadSettings() throws {
        let text = try EphemeralPgBouncer.Configuration(poolSize: 3).iniText(
            poolMode: .transaction, port: 7001, baseDirectory: "/tmp/pgbouncer-x", serverSocketDirectory: "/tmp/pglocks-y/socket", serverPort: 7002, user: "postgres"
        )
        for line in [
            "* = host='/tmp/pglocks-y/socket' port=7002", "listen_addr = 127.0.0.1", "listen_port = 7001",
            "pool_mode = transaction", "default_pool_size = 3", "auth_type = trust", "ignore_startup_parameters = extra_float_digits",
            "unix_socket_dir = /tmp/pgbouncer-x/socket", "logfile = /tmp/pgbouncer-x/pgbouncer.log",
        ] {
            #expect(text.contains(line + "\n"), "missing: \(line)")
        }
        for settings in [["bad name": "1"], ["server_reset_query": "SELECT 1\nauth_type = any"], ["x=": "1"]] {
            #expect(throws: EphemeralPostgresError.self) {
                try EphemeralPgBouncer.Configuration(settings: settings).iniText(
                    poolMode: .session, port: 1, baseDirectory: "/tmp/x", serverSocketDirectory: "/tmp/y", serverPort: 2, user: "postgres"
                )
            }
        }
    }
}

private func backendPID(_ connection: PostgresConnection) async throws -> Int32 {
    try await connection.query("SELECT pg_backend_pid()", logger: TestDatabase.logger).collect()[0].decode(Int32.self)
}

/// Whether a TCP connection to 127.0.0.1:`port` is accepted now.
private func canConnect(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}
