import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PglockHarness
import PostgresLocksTestSupport
import Subprocess
import Testing
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// `pglock web` as a process: it serves the console on loopback, and refuses an address other
/// machines can reach until sign-in is configured.
@Suite("pglock web")
struct PglockWebCommandTests {
    @Test func pglockWebServesTheConsoleOnLoopbackAndStopsOnSIGTERM() async throws {
        try await TestDatabase.withDatabase { db in
            let status = try await Subprocess.run(
                .path(FilePath(try pglockExecutable())),
                arguments: ["web", "--database-url", db.settings.redactedURL, "--listen", "127.0.0.1:0", "--read-only"],
                environment: .inherit.updating(["PGLOCK_WEB_TOKEN": "", "PGLOCK_WEB_USER": "", "PGLOCK_WEB_TOKEN_FILE": ""]),
                input: .none, output: .sequence, error: .discarded
            ) { execution in
              do {
                let line = try await firstLine(of: execution.standardOutput)
                #expect(line.hasPrefix("pglock web: serving http://127.0.0.1:") && line.contains("(read-only)"))
                let port = try #require(Int(line.split(separator: ":").last?.split(separator: "/").first ?? ""))
                try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
                    let response = try await client.get("/locks", headers: [HTTPField.Name("Host")!: "127.0.0.1:\(port)"])
                    #expect(response.status == .ok)
                    #expect(response.headers[.contentSecurityPolicy]?.contains("default-src 'none'") == true)
                    #expect(String(buffer: response.body ?? ByteBuffer()).contains("<h1>Locks</h1>"))
                }
                try execution.send(signal: .terminate)
              } catch {
                try? execution.send(signal: .kill)  // never leave the server running
                throw error
              }
            }.terminationStatus
            #expect(status.isSuccess, "graceful shutdown on SIGTERM")
        }
    }

    @Test func anAddressOtherMachinesCanReachIsRefusedWithoutSignIn() async throws {
        let result = try await Subprocess.run(
            .path(FilePath(try pglockExecutable())),
            arguments: ["web", "--database-url", "postgres://nobody@127.0.0.1:1/none", "--listen", "0.0.0.0:0"],
            environment: .inherit.updating(["PGLOCK_WEB_TOKEN": "", "PGLOCK_WEB_USER": "", "PGLOCK_WEB_TOKEN_FILE": ""]),
            output: .string(limit: 1 << 16), error: .string(limit: 1 << 16)
        )
        #expect(!result.terminationStatus.isSuccess)
        #expect(result.standardError.contains("PGLOCK_WEB_TOKEN"))
    }
}
