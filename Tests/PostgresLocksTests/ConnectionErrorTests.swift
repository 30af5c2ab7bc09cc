#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EphemeralPostgres
import Foundation
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Testing

/// A TCP socket on 127.0.0.1 that listens but never accepts: the kernel completes the
/// handshake into the backlog, the client sends its startup, and nothing ever answers.
private final class LoopbackListener: Sendable {
    let fd: Int32
    let port: Int

    init(backlog: Int32 = 4) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed") }
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
        guard bound, listen(fd, backlog) == 0 else {
            Glibc.close(fd)
            throw TestFailure("could not listen on 127.0.0.1")
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { _ = Glibc.close(fd) }
}

/// Runs `check` on `settings` and returns the error it throws, with how long it took.
private func connectError(_ settings: ConnectionSettings, limit: Duration = .seconds(30)) async throws -> (error: PostgresLocksError, elapsed: Duration) {
    let started = ContinuousClock.now
    do {
        try await withinTimeLimit(limit, "checkConnection to \(settings)") {
            try await settings.checkConnection(logger: TestDatabase.logger)
        }
    } catch let error as PostgresLocksError {
        return (error, ContinuousClock.now - started)
    }
    throw TestFailure("checkConnection to \(settings) succeeded")
}

@Suite("Connection errors say what happened")
struct ConnectionErrorTests {
    @Test func refusedConnectionNamesHostAndPort() async throws {
        let port = try EphemeralPostgres.freeLoopbackPort()
        // A connect timeout far above the bound below: failing within the bound shows the
        // refusal was reported at once, not when the timeout ran out, even on a loaded machine.
        let settings = ConnectionSettings(host: .tcp("127.0.0.1"), port: port, user: "postgres", password: "pw-never-shown", database: "x", connectTimeoutSeconds: 120)
        let (error, elapsed) = try await connectError(settings, limit: .seconds(150))
        #expect(error.code == .connectionRefused, "\(error)")
        #expect(error.message == "cannot connect to 127.0.0.1:\(port): connection refused", "\(error)")
        #expect(error.hint?.contains("is the server running") == true, "\(error)")
        // At once, not after the 120 s connect timeout (the bound leaves room for a loaded machine).
        #expect(elapsed < .seconds(60), "\(elapsed)")
        #expect(!String(reflecting: error).contains("pw-never-shown"))

        // The same failure through the driver's own connect, mapped without the settings:
        // the host and port come from the driver's error.
        let raw = await #expect(throws: (any Error).self) {
            let connection = try await PostgresConnection.connect(configuration: try settings.makeConnectionConfiguration(), id: 1, logger: TestDatabase.logger)
            try? await connection.close()
        }
        let wrapped = try #require(raw.map(PostgresLocksError.wrap) as? PostgresLocksError)
        #expect(wrapped.code == .connectionRefused, "\(wrapped)")
        #expect(wrapped.message.contains("127.0.0.1:\(port)"), "\(wrapped)")
        #expect(wrapped.isConnectFailure && wrapped.isConnectionUnavailable)
    }

    @Test func missingSocketFileNamesItsPath() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("no-server-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let settings = ConnectionSettings(host: .unixSocketDirectory(folder), port: 5432, user: "postgres", connectTimeoutSeconds: 120)
        let (error, elapsed) = try await connectError(settings, limit: .seconds(150))
        #expect(error.code == .socketNotFound, "\(error)")
        #expect(error.message == "cannot connect to socket \(folder)/.s.PGSQL.5432: no such socket file", "\(error)")
        #expect(error.hint?.contains("running locally") == true, "\(error)")
        // At once, not after the 120 s connect timeout (the bound leaves room for a loaded machine).
        #expect(elapsed < .seconds(60), "\(elapsed)")
    }

    @Test func unknownHostNamesTheHost() async throws {
        let settings = ConnectionSettings(host: .tcp("no-such-host.invalid"), port: 5432, user: "postgres", connectTimeoutSeconds: 5)
        let (error, _) = try await connectError(settings)
        #expect(error.code == .unknownHost, "\(error)")
        #expect(error.message.hasPrefix("cannot connect to no-such-host.invalid:5432: unknown host \"no-such-host.invalid\""), "\(error)")
    }

    @Test func connectTimeoutNamesHostPortAndTheTimeout() async throws {
        // Accepted by the kernel, never answered: only the connect timeout ends the wait.
        let listener = try LoopbackListener()
        defer { listener.close() }
        let settings = ConnectionSettings(host: .tcp("127.0.0.1"), port: listener.port, user: "postgres", sslMode: .disable, connectTimeoutSeconds: 1)
        let (error, elapsed) = try await connectError(settings, limit: .seconds(10))
        #expect(error.code == .connectTimeout, "\(error)")
        #expect(error.message == "cannot connect to 127.0.0.1:\(listener.port): no connection within the connect timeout (1 s)", "\(error)")
        // The 1 s given, not the 10 s default (the bound leaves room for a loaded machine).
        #expect(elapsed >= .milliseconds(900) && elapsed < .seconds(9), "\(elapsed)")
    }

    @Test func wrongOrMissingPasswordNamesUserAndMethodNeverThePassword() async throws {
        try await EphemeralPostgres.withServer(.init(disableDurability: true, hostAuthentication: .scramSHA256), logger: TestDatabase.logger) { server in
            let password = "pw-" + UUID().uuidString
            try await TestDatabase.withConnection(settings: try ConnectionSettings(url: server.url())) { connection in
                _ = try await connection.query(PostgresQuery(unsafeSQL: "CREATE ROLE app_user LOGIN PASSWORD '\(password)'"), logger: TestDatabase.logger).collect()
            }
            let right = ConnectionSettings(host: .tcp("127.0.0.1"), port: server.port, user: "app_user", password: password, database: "postgres", sslMode: .disable)
            try await right.checkConnection(logger: TestDatabase.logger)

            let wrongPassword = "wrong-" + UUID().uuidString
            var wrong = right
            wrong.password = wrongPassword
            let (error, _) = try await connectError(wrong)
            #expect(error.code == .authenticationFailed, "\(error)")
            #expect(error.sqlState == "28P01")
            #expect(error.message.hasPrefix("cannot connect to 127.0.0.1:\(server.port) as user \"app_user\": scram-sha-256 authentication failed"), "\(error)")

            var missing = right
            missing.password = nil
            let (noPassword, _) = try await connectError(missing)
            #expect(noPassword.code == .authenticationFailed, "\(noPassword)")
            #expect(noPassword.message == "cannot connect to 127.0.0.1:\(server.port) as user \"app_user\": the server asks for a password (scram-sha-256) and none was given", "\(noPassword)")

            // A role that does not exist reads the same with password methods (the server hides it).
            var ghost = wrong
            ghost.user = "ghost_user"
            let (hidden, _) = try await connectError(ghost)
            #expect(hidden.code == .authenticationFailed, "\(hidden)")

            for text in [error, noPassword, hidden].flatMap({ ["\($0)", String(reflecting: $0)] }) {
                #expect(!text.contains(password) && !text.contains(wrongPassword), "a password leaked into: \(text)")
            }
        }
    }

    @Test func missingDatabaseIsNamed() async throws {
        let server = try await TestDatabase.server()
        let settings = server.settings(database: "no_such_db_\(UInt32.random(in: 0...UInt32.max))")
        let (error, _) = try await connectError(settings)
        #expect(error.code == .databaseNotFound, "\(error)")
        #expect(error.sqlState == "3D000")
        #expect(error.message.hasSuffix(": database \"\(settings.database)\" does not exist"), "\(error)")
        #expect(error.message.contains("as user \"\(settings.user)\""), "\(error)")
    }

    @Test func missingRoleIsNamedWhereTheServerSaysSo() async throws {
        let server = try await TestDatabase.server()
        guard server.ephemeral != nil else { return }  // DATABASE_URL: its pg_hba.conf may hide missing roles
        var settings = server.admin
        settings.user = "no_such_role_\(UInt32.random(in: 0...UInt32.max))"
        let (error, _) = try await connectError(settings)
        #expect(error.code == .roleNotFound, "\(error)")
        #expect(error.sqlState == "28000")
        #expect(error.message.hasSuffix("as user \"\(settings.user)\": role \"\(settings.user)\" does not exist"), "\(error)")
    }

    @Test func tlsRequiredButNotOfferedNamesTheServer() async throws {
        let shared = try await TestDatabase.server()
        guard let plain = shared.ephemeral else { return }  // DATABASE_URL: its TLS is unknown
        let settings = ConnectionSettings(host: .tcp("127.0.0.1"), port: plain.port, user: plain.superuser, database: "postgres", sslMode: .require, connectTimeoutSeconds: 120)
        let (error, elapsed) = try await connectError(settings, limit: .seconds(150))
        #expect(error.code == .tlsUnavailable, "\(error)")
        #expect(error.message == "cannot connect to 127.0.0.1:\(plain.port): the server does not offer TLS, and the connection settings require it", "\(error)")
        // At once, not after the 120 s connect timeout.
        #expect(elapsed < .seconds(60), "\(elapsed)")
    }

    @Test func poolAgainstAStoppedServerEndsWithATypedError() async throws {
        // What a PostgresClient does when nothing listens: it retries in the background and
        // fails the waiting lease once its circuit breaker trips. The error must be typed.
        let port = try EphemeralPostgres.freeLoopbackPort()
        let settings = ConnectionSettings(host: .tcp("127.0.0.1"), port: port, user: "postgres", sslMode: .disable, connectTimeoutSeconds: 1)
        let client = PostgresClient(configuration: try settings.makeClientConfiguration(), backgroundLogger: TestDatabase.backgroundLogger)
        let started = ContinuousClock.now
        let error = await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return await #expect(throws: (any Error).self) {
                try await withinTimeLimit(.seconds(120), "a lease from a pool whose server is down") {
                    try await client.withConnection { _ in }
                }
            }
        }
        let elapsed = ContinuousClock.now - started
        let wrapped = try #require(error.map(PostgresLocksError.wrap) as? PostgresLocksError)
        #expect(wrapped.code == .connectFailed, "\(wrapped)")
        #expect(wrapped.isConnectFailure)
        #expect(wrapped.hint?.contains("checkConnection") == true, "\(wrapped)")
        print("pool lease against a stopped server failed after \(elapsed): \(wrapped)")
    }
}
