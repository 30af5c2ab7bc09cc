#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import PostgresLocksTestSupport
import Subprocess
import Testing
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// A loopback port with nothing listening on it (bound, read, closed).
private func unusedLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
            bind(fd, raw, length) == 0 && getsockname(fd, raw, &length) == 0
        }
    }
    guard bound else { throw TestFailure("could not bind a port on 127.0.0.1") }
    return Int(UInt16(bigEndian: address.sin_port))
}

@Suite("pglock: an unreachable server")
struct CommandConnectErrorTests {
    @Test func everyCommandSaysOnOneLineWhyItCannotConnect() async throws {
        let port = try unusedLoopbackPort()
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
