import EphemeralPostgres
import Foundation
import PostgresLocksTestSupport
import Subprocess
import Testing
#if canImport(System)
import System
#else
import SystemPackage
#endif

@Suite("pglock: an unreachable server")
struct CommandConnectErrorTests {
    @Test func everyCommandSaysOnOneLineWhyItCannotConnect() async throws {
        let port = try EphemeralPostgres.freeLoopbackPort()
        let password = "pw-" + UUID().uuidString
        let url = "postgres://postgres:\(password)@127.0.0.1:\(port)/x"
        let commands: [[String]] = [
            ["doctor", "--database-url", url],
            ["demo", "--database-url", url],
            ["run", "--database-url", url, "--lock", "k", "--", "echo", "ran"],
        ]
        for arguments in commands {
            let started = ContinuousClock.now
            let result = try await withinTimeLimit(.seconds(30), "pglock \(arguments[0])") {
                try await Subprocess.run(
                    .path(FilePath(try pglockExecutable())), arguments: Arguments(arguments),
                    environment: .inherit.updating(["DATABASE_URL": nil, "PGLOCK_LOG_LEVEL": nil]),
                    input: .none, output: .string(limit: 1 << 16), error: .string(limit: 1 << 16)
                )
            }
            let elapsed = ContinuousClock.now - started
            let standardError = result.standardError
            let lines = standardError.split(separator: "\n", omittingEmptySubsequences: true)
            #expect(!result.terminationStatus.isSuccess, "pglock \(arguments[0]) succeeded")
            // Refused at once: well within the default connect timeout (10 s).
            #expect(elapsed < .seconds(10), "pglock \(arguments[0]) took \(elapsed)")
            #expect(lines.count == 1, "pglock \(arguments[0]) printed: \(standardError)")
            #expect(lines.first?.hasPrefix("pglock: cannot connect to 127.0.0.1:\(port): connection refused") == true, "\(standardError)")
            #expect(standardError.contains("connectionRefused"), "\(standardError)")
            #expect(!result.standardOutput.contains("ran"))
            #expect(!standardError.contains(password) && !result.standardOutput.contains(password))
        }
    }
}
