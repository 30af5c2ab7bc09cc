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

/// Whether the session of `connection` is encrypted.
private func isEncrypted(_ connection: PostgresConnection) async throws -> Bool {
    try await connection.checkedQuery("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", logger: TestDatabase.logger).rows[0].decode(Bool.self)
}

private func withConnection<T: Sendable>(_ settings: ConnectionSettings, _ body: (PostgresConnection) async throws -> T) async throws -> T {
    let connection = try await PostgresConnection.connect(configuration: try settings.makeConnectionConfiguration(), id: 1, logger: TestDatabase.logger)
    do {
        let result = try await body(connection)
        try? await connection.close()
        return result
    } catch {
        try? await connection.close()
        throw error
    }
}

@Suite("Security: TLS")
struct TLSTests {
    @Test func sslmodeRequireConnectsOverTLSForConnectionsAndPools() async throws {
        let security = try await SecurityServer.shared()
        let settings = try ConnectionSettings(url: security.url(query: "sslmode=require"))
        #expect(try await withConnection(settings) { try await isEncrypted($0) })
        let pooled = try await withClient(settings) { client in
            try await client.withAdvisoryLock(.hashed("tls"), logger: TestDatabase.logger) { tx in
                try await tx.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").rows[0].decode(Bool.self)
            }
        }
        #expect(pooled)
    }

    @Test func verifyFullWithTheServersCertificateConnectsToLocalhost() async throws {
        let security = try await SecurityServer.shared()
        let certificate = try #require(security.server.tlsCertificatePath)
        let settings = try ConnectionSettings(url: security.url(host: "localhost", query: "sslmode=verify-full&sslrootcert=\(certificate)"))
        #expect(settings.sslMode == .verifyFull)
        #expect(try await withConnection(settings) { try await isEncrypted($0) })
        let verifyCA = try ConnectionSettings(url: security.url(query: "sslmode=verify-ca&sslrootcert=\(certificate)"))
        #expect(try await withConnection(verifyCA) { try await isEncrypted($0) })
    }

    @Test func verifyFullRefusesACertificateItCannotVerify() async throws {
        let security = try await SecurityServer.shared()
        // No sslrootcert: the system's roots, which did not sign the self-signed certificate.
        let settings = try ConnectionSettings(url: security.url(host: "localhost", query: "sslmode=verify-full"))
        let error = await #expect(throws: (any Error).self) {
            try await withConnection(settings) { try await isEncrypted($0) }
        }
        let text = String(reflecting: error.map(PostgresLocksError.wrap) as Any)
        #expect(text.localizedCaseInsensitiveContains("certificate") || text.localizedCaseInsensitiveContains("ssl") || text.localizedCaseInsensitiveContains("tls"), "\(text)")
    }

    @Test func sslmodeRequireAgainstAServerWithoutTLSFailsWithATypedError() async throws {
        let shared = try await TestDatabase.server()
        guard let plain = shared.ephemeral else { return }  // DATABASE_URL: its TLS is unknown
        let settings = ConnectionSettings(host: .tcp("127.0.0.1"), port: plain.port, user: plain.superuser, database: "postgres", sslMode: .require)
        let direct = await #expect(throws: (any Error).self) {
            try await withConnection(settings) { try await isEncrypted($0) }
        }
        let wrapped = try #require(direct.map(PostgresLocksError.wrap) as? PostgresLocksError)
        #expect(wrapped.code == .tlsUnavailable, "\(wrapped)")
        #expect(wrapped.description.contains("sslmode"), "\(wrapped)")

        // The check to run before making a pool (which would retry for 60 s and then report
        // only that its circuit breaker tripped): the same error, at once.
        let checked = await #expect(throws: PostgresLocksError.self) {
            try await withinTimeLimit(.seconds(30), "checkConnection against a server without TLS") {
                try await settings.checkConnection(logger: TestDatabase.logger)
            }
        }
        #expect(checked?.code == .tlsUnavailable, "\(String(describing: checked))")

        // pglock checks first, so it says why at once.
        let url = "postgresql://\(plain.superuser)@127.0.0.1:\(plain.port)/postgres?sslmode=require"
        let result = try await withinTimeLimit(.seconds(60), "pglock run against a server without TLS") {
            try await Subprocess.run(
                .path(FilePath(try pglockExecutable())), arguments: ["run", "--database-url", url, "--lock", "k", "--", "echo", "never"],
                input: .none, output: .string(limit: 1 << 16), error: .string(limit: 1 << 16)
            )
        }
        #expect(!result.terminationStatus.isSuccess)
        #expect(!result.standardOutput.contains("never"))
        #expect(result.standardError.contains("tlsUnavailable"), "\result.standardError")
    }
}
