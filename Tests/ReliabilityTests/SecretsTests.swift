import Foundation
import Logging
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

@Suite("Security: passwords never appear in logs, errors or pglock output")
struct SecretsTests {
    @Test func aPasswordNeverAppearsInTraceLogsOrErrorsWhetherRightOrWrong() async throws {
        let security = try await SecurityServer.shared()
        let wrong = "wrong-" + UUID().uuidString
        let logs = LockedBox<[String]>([])
        let logger = CapturingLogHandler.logger(into: logs)
        var texts: [String] = []

        // The right password: a pool, a dedicated connection, locks, a leader election, all logging at trace.
        let settings = try ConnectionSettings(url: security.url(query: "sslmode=require&application_name=secrets"))
        texts += ["\(settings)", String(reflecting: settings), settings.redactedURL]
        try await withClient(settings, backgroundLogger: logger) { client in
            _ = try await client.withAdvisoryLock(.hashed("secret-test"), logger: logger) { tx in
                try await tx.query("SELECT 1")
            }
            try await client.withSessionAdvisoryLock(.hashed("secret-test"), logger: logger) {}
            _ = try await client.lockSnapshot(logger: logger)
            var configuration = LeaderElection.Configuration(name: "secrets", connection: settings)
            configuration.heartbeatInterval = .milliseconds(100)
            let election = try LeaderElection(configuration: configuration, logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await election.run() }
                try await waitUntil(timeout: .seconds(60), "the election leads") { election.isLeader }
                group.cancelAll()
            }
        }
        let connection = try await PostgresConnection.connect(configuration: try settings.makeConnectionConfiguration(), id: 7, logger: logger)
        try await connection.close()

        // A wrong password, in the URL and in the query: connecting fails, and says so without it.
        for url in [security.url(password: wrong, query: "sslmode=require"), "postgresql://\(security.user)@127.0.0.1:\(security.server.port)/postgres?password=\(wrong)"] {
            let bad = try ConnectionSettings(url: url)
            texts += ["\(bad)", String(reflecting: bad)]
            do {
                let connection = try await PostgresConnection.connect(configuration: try bad.makeConnectionConfiguration(), id: 8, logger: logger)
                try? await connection.close()
                Issue.record("a wrong password was accepted")
            } catch {
                let wrapped = PostgresLocksError.wrap(error)
                texts += ["\(error)", String(reflecting: error), "\(wrapped)", String(reflecting: wrapped)]
                #expect(String(reflecting: wrapped).contains("28P01") || String(reflecting: wrapped).contains("password"), "\(String(reflecting: wrapped))")
            }
            // The check before making a pool: the login is refused, and it says so without the password.
            do {
                try await bad.checkConnection(logger: logger)
                Issue.record("checkConnection accepted a wrong password")
            } catch {
                #expect((error as? PostgresLocksError)?.sqlState == "28P01", "\(String(reflecting: error))")
                texts += ["\(error)", String(reflecting: error)]
            }
        }

        texts += logs.value
        #expect(logs.value.count > 10, "trace logging captured something")
        for text in texts {
            #expect(!text.contains(security.password), "the password leaked into: \(text)")
            #expect(!text.contains(wrong), "the wrong password leaked into: \(text)")
        }
    }

    /// PostgresNIO's `PSQLError` describes itself with one generic sentence whatever failed; the
    /// services' log lines must say what did (here: the login was refused), and still never the
    /// password.
    @Test func servicesThatCannotLogInLogWhyNotTheDriversGenericSentence() async throws {
        let security = try await SecurityServer.shared()
        let wrong = "wrong-" + UUID().uuidString
        let settings = try ConnectionSettings(url: security.url(password: wrong, query: "sslmode=require"))
        let logs = LockedBox<[String]>([])
        let logger = CapturingLogHandler.logger(into: logs)
        var poolConfiguration = SessionLockPool.Configuration(connection: settings)
        poolConfiguration.reconnectDelay = .milliseconds(50)
        let pool = try SessionLockPool(configuration: poolConfiguration, logger: logger)
        let election = try LeaderElection(configuration: LeaderElection.Configuration(name: "secrets-log", connection: settings), logger: logger)
        @Sendable func isFailure(_ line: String) -> Bool {
            line.contains("session lock pool: a session could not connect") || (line.contains("leader election") && line.contains("error"))
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { _ = try? await pool.run() }
            group.addTask { _ = try? await election.run() }
            try? await waitUntil(timeout: .seconds(60), "both services log a failed connect") {
                let lines = logs.value.filter(isFailure)
                return lines.contains { $0.contains("session lock pool") } && lines.contains { $0.contains("leader election") }
            }
            group.cancelAll()
        }
        let lines = logs.value.filter(isFailure)
        #expect(lines.contains { $0.contains("session lock pool") })
        #expect(lines.contains { $0.contains("leader election") })
        for line in lines {
            #expect(!line.contains("Generic description"), "a log line says nothing of what failed: \(line)")
            #expect(line.contains("28P01") || line.contains("password authentication failed"), "\(line)")
            #expect(!line.contains(wrong), "the password leaked into: \(line)")
        }
    }

    @Test func pglockNeverPrintsThePassword() async throws {
        let security = try await SecurityServer.shared()
        let wrong = "wrong-" + UUID().uuidString
        let url = security.url(query: "sslmode=require")
        let withoutPassword = "postgresql://\(security.user)@127.0.0.1:\(security.server.port)/postgres?sslmode=require"
        let runs: [(arguments: [String], environment: [Environment.Key: String?], succeeds: Bool)] = [
            (["run", "--database-url", url, "--lock", "secret", "--", "echo", "ran"], [:], true),
            (["locks", "--database-url", url], [:], true),
            (["locks", "--json", "--database-url", url], [:], true),
            (["top", "--iterations", "1", "--database-url", url], [:], true),
            (["doctor", "--database-url", url], [:], true),
            (["queue", "stats", "--database-url", url, "--schema", "pglock_secret_q"], [:], false),
            (["run", "--lock", "secret", "--", "echo", "ran"], ["DATABASE_URL": withoutPassword, "PGPASSWORD": security.password], true),
            (["run", "--database-url", security.url(password: wrong, query: "sslmode=require"), "--lock", "secret", "--", "echo", "ran"], [:], false),
            (["locks", "--database-url", security.url(password: wrong, query: "sslmode=require")], [:], false),
        ]
        for run in runs {
            var environment: [Environment.Key: String?] = ["PGLOCK_LOG_LEVEL": "trace", "TERM": "dumb"]
            environment.merge(run.environment) { $1 }
            let arguments = run.arguments
            let result = try await withinTimeLimit(.seconds(60), "pglock \(arguments[0])") { [environment] in
                try await Subprocess.run(
                    .path(FilePath(try pglockExecutable())), arguments: Arguments(arguments),
                    environment: .inherit.updating(environment),
                    input: .none, output: .string(limit: 1 << 22), error: .string(limit: 1 << 22)
                )
            }
            let output = result.standardOutput + result.standardError
            if run.succeeds {
                #expect(result.terminationStatus.isSuccess, "pglock \(run.arguments[0]) failed: \(output.suffix(2000))")
            } else {
                #expect(!result.terminationStatus.isSuccess, "pglock \(run.arguments[0]) should have failed")
            }
            #expect(!output.isEmpty)
            #expect(!output.contains(security.password), "pglock \(run.arguments.prefix(2)) printed the password: \(output.suffix(2000))")
            #expect(!output.contains(wrong), "pglock \(run.arguments.prefix(2)) printed the wrong password")
        }
    }
}
