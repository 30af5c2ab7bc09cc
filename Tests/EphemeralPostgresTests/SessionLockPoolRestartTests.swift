import EphemeralPostgres
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Testing

@Suite("Session lock pool across a server restart", .serverSlot)
struct SessionLockPoolRestartTests {
    @Test func everyHoldEndsWithLockLostWhenTheServerRestartsAndThePoolTakesLocksAgainAfter() async throws {
        // A server of its own: this test stops it.
        let server = try await EphemeralPostgres.start(EphemeralPostgres.Configuration(), logger: TestDatabase.logger)
        do {
            try await Self.restart(server)
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    private static func restart(_ server: EphemeralPostgres) async throws {
        let logger = TestDatabase.logger
        var configuration = SessionLockPool.Configuration(connection: try ConnectionSettings(url: server.url()))
        // The restart is noticed by the sockets closing. The heartbeat's answer waits behind
        // the lock statements queued on its session: a tight limit closes healthy sessions on a
        // loaded machine (the full suite), and holders end before all 100 have started.
        configuration.heartbeatInterval = .seconds(1)
        configuration.responseTimeout = .seconds(5)
        configuration.reconnectDelay = .milliseconds(50)
        let pool = try SessionLockPool(configuration: configuration, logger: logger)
        let checker = try await PostgresConnection.connect(
            configuration: try ConnectionSettings(url: server.url()).makeConnectionConfiguration(), id: 1, logger: logger
        )
        do {
            try await holdAcrossRestart(server, pool: pool, configuration: configuration, checker: checker)
        } catch {
            // A connection must be closed before it is freed, whatever failed.
            try? await checker.close()
            throw error
        }
        try? await checker.close()
    }

    private static func holdAcrossRestart(
        _ server: EphemeralPostgres, pool: SessionLockPool, configuration: SessionLockPool.Configuration, checker: PostgresConnection
    ) async throws {
        let logger = TestDatabase.logger
        func held() async throws -> Int {
            try await checker.query("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND granted", logger: logger)
                .collect()[0].decode(Int.self)
        }
        try await withThrowingTaskGroup(of: Void.self) { running in
            running.addTask { try await pool.run() }
            let (started, lost, other) = (LockedBox(0), LockedBox(0), LockedBox([String]()))
            try await withThrowingTaskGroup(of: Void.self) { holders in
                for key in Int64(1)...100 {
                    holders.addTask {
                        do {
                            try await pool.withLock(.int64(key)) {
                                started.withLock { $0 += 1 }
                                try await suspendUntilCancelled()
                            }
                        } catch let error as PostgresLocksError where error.code == .lockLost {
                            lost.withLock { $0 += 1 }
                        } catch {
                            other.withLock { $0.append("\(error)") }
                        }
                    }
                }
                try await waitUntil("100 locks are held") { started.value == 100 }
                #expect(try await held() == 100)
                try await server.stopServer(immediate: true)
                try await waitUntil(timeout: .seconds(30), "every body has ended with lockLost") { lost.value + other.value.count == 100 }
                #expect(lost.value == 100, "other outcomes: \(other.value)")
                try await holders.waitForAll()
            }
            try await server.startServer()
            // The pool reconnects by itself: a new lock is taken and held on the new server.
            let checkerAfter = try await PostgresConnection.connect(
                configuration: try ConnectionSettings(url: server.url()).makeConnectionConfiguration(), id: 2, logger: logger
            )
            do {
                try await waitUntil(timeout: .seconds(30), "the pool's sessions are back") { pool.openSessionCount == configuration.connections }
                let seen = try await pool.withLock(.int64(7), wait: .timeout(.seconds(10))) {
                    try await checkerAfter.query("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = 7", logger: logger)
                        .collect()[0].decode(Int.self)
                }
                #expect(seen == 1)
                #expect(pool.heldCount == 0)
            } catch {
                try? await checkerAfter.close()
                running.cancelAll()
                throw error
            }
            try? await checkerAfter.close()
            running.cancelAll()
        }
    }
}
