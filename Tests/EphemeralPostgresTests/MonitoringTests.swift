import EphemeralPostgres
import Foundation
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Subprocess
import Testing
import PglockHarness
#if canImport(System)
import System
#else
import SystemPackage
#endif

private func pglock(_ arguments: [String]) async throws -> (status: Int32, output: String) {
    let result = try await Subprocess.run(
        .path(FilePath(try pglockExecutable())), arguments: Arguments(arguments),
        output: .string(limit: 1 << 20), error: .string(limit: 1 << 16)
    )
    guard case .exited(let code) = result.terminationStatus else { return (-1, "") }
    return (code, result.standardOutput)
}

@Suite("Seeing locks: pglock locks, top, doctor", .serverSlot)
struct MonitoringTests {
    @Test func locksJSONReportsAHeldKeyDecodedAndTheWaiterBlockedByItsHolder() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
          try await db.withConnections(2) { connections in
            let (holder, waiter) = (connections[0], connections[1])
            let key = LockKey.pair(namespace: 7, id: 42)
            let holderPID = try await holder.query("SELECT pg_backend_pid()", logger: db.logger).collect()[0].decode(Int32.self)
            _ = try await holder.query("SELECT pg_advisory_lock(7, 42)", logger: db.logger).collect()
            let waiting = Task { try await waiter.query("SELECT pg_advisory_lock(7, 42)", logger: db.logger).collect() }
            try await waitUntil("the waiter waits") {
                try await db.scalar("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", as: Int.self) == 1
            }
            let (status, output) = try await pglock(["locks", "--json", "--database-url", db.settings.redactedURL])
            #expect(status == 0)
            struct Output: Decodable { var snapshot: LockSnapshot; var blockingTree: [BlockingTree.Node] }
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            let report = try decoder.decode(Output.self, from: Data(output.utf8))
            let held = report.snapshot.locks.filter { $0.granted && $0.target == .advisory(key) }
            #expect(held.map(\.pid) == [holderPID])
            let waits = report.snapshot.locks.filter { !$0.granted }
            #expect(waits.count == 1 && waits[0].target == .advisory(key))
            let waiterSession = report.snapshot.sessions.first { $0.pid == waits[0].pid }
            #expect(waiterSession?.blockedBy == [holderPID])
            #expect(report.blockingTree.map(\.pid) == [holderPID])
            #expect(report.blockingTree.first?.waiters.map(\.pid) == [waits[0].pid])
            _ = try await holder.query("SELECT pg_advisory_unlock_all()", logger: db.logger).collect()
            _ = try await waiting.value
          }
        }
    }

    /// A waiting backend leaves its `Lock` wait event whenever a signal wakes it (on a busy
    /// cluster: cache-invalidation catch-ups from other databases' DDL) and waits again. Here two
    /// sessions keep waking the waiter with `pg_log_backend_memory_contexts`, which also makes it
    /// write its memory contexts to the server log before it waits again; every snapshot must
    /// still show it blocked by its holder, and the holder must still count as blocking someone.
    @Test func aWaiterWokenBySignalsIsStillShownBlockedByItsHolder() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 6) { db in
          try await db.withConnections(5) { connections in
            let (holder, waiter, observer) = (connections[0], connections[1], connections[4])
            let holderPID = try await holder.query("SELECT pg_backend_pid()", logger: db.logger).collect()[0].decode(Int32.self)
            let waiterPID = try await waiter.query("SELECT pg_backend_pid()", logger: db.logger).collect()[0].decode(Int32.self)
            _ = try await holder.query("SELECT pg_advisory_lock(7, 43)", logger: db.logger).collect()
            let waiting = Task { try await waiter.query("SELECT pg_advisory_lock(7, 43)", logger: db.logger).collect() }
            try await waitUntil("the waiter waits") {
                try await db.scalar("SELECT count(*)::int FROM pg_locks WHERE pid = \(waiterPID) AND NOT granted", as: Int.self) == 1
            }
            // How often the waiter is seen out of its wait event, in `samples` looks with a fresh
            // read of the activity each (a session reads it once per transaction otherwise).
            _ = try await observer.query("""
                CREATE FUNCTION pg_temp.looks_off_lock_wait(target int, samples int) RETURNS int LANGUAGE plpgsql AS $$
                DECLARE off int := 0; event text;
                BEGIN
                    FOR i IN 1..samples LOOP
                        PERFORM pg_stat_clear_snapshot();
                        SELECT wait_event_type INTO event FROM pg_stat_activity WHERE pid = target;
                        IF event IS DISTINCT FROM 'Lock' THEN off := off + 1; END IF;
                    END LOOP;
                    RETURN off;
                END $$
                """, logger: db.logger).collect()
            // Each round is a few milliseconds, while the waiter writes about 16 kB of memory
            // contexts to the server log about 1,500 times a second: 100 rounds keep that near
            // 20 MB. Statements that trusted the wait event got 6 to 14 of 100 rounds wrong.
            let rounds = 100
            var (snapshotsWithoutBlocker, refusedSignals, wokenSamples) = (0, 0, 0)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for signaller in connections[2...3] {
                    group.addTask {
                        do {
                            while true {
                                _ = try await signaller.query("SELECT pg_log_backend_memory_contexts(\(waiterPID))", logger: db.logger).collect()
                            }
                        } catch where Task.isCancelled {}
                    }
                }
                for _ in 0..<rounds {
                    wokenSamples += try await observer.query("SELECT pg_temp.looks_off_lock_wait(\(waiterPID), 20)", logger: db.logger).collect()[0].decode(Int.self)
                    let snapshot = try await db.client.lockSnapshot(logger: db.logger)
                    let waiterSession = try #require(snapshot.sessions.first { $0.pid == waiterPID })
                    if waiterSession.blockedBy != [holderPID] { snapshotsWithoutBlocker += 1 }
                    if try await !db.client.signalBackend(holderPID, terminate: false, onlyIfBlocking: true, logger: db.logger) {
                        refusedSignals += 1
                    }
                }
                group.cancelAll()
                try await group.waitForAll()
            }
            // The scenario happened: the waiter was seen out of its wait event.
            #expect(wokenSamples > 0, "the waiter was never seen out of its wait event in \(rounds * 20) looks; the test proved nothing")
            #expect(snapshotsWithoutBlocker == 0, "\(snapshotsWithoutBlocker) of \(rounds) snapshots showed the waiter blocked by no one")
            #expect(refusedSignals == 0, "\(refusedSignals) of \(rounds) signals to the holder were refused as blocking no one")
            _ = try await holder.query("SELECT pg_advisory_unlock_all()", logger: db.logger).collect()
            _ = try await waiting.value
          }
        }
    }

    @Test func topsRenderingOfAFixedSnapshotShowsTheBlockingTree() throws {
        let snapshot = LockSnapshot(
            takenAt: Date(timeIntervalSince1970: 0),
            locks: [
                .init(pid: 10, target: .advisory(.hashed("payment:order-123")), mode: "ExclusiveLock", granted: true),
                .init(pid: 11, target: .advisory(.hashed("payment:order-123")), mode: "ExclusiveLock", granted: false, waitingSeconds: 2.5),
                .init(pid: 12, target: .transaction("900"), mode: "ShareLock", granted: false, waitingSeconds: 0.25),
            ],
            sessions: [
                .init(pid: 10, applicationName: "billing", client: "10.0.0.5", state: "idle in transaction", transactionSeconds: 30, blockedBy: [], query: "SELECT 1"),
                .init(pid: 11, applicationName: "billing", client: "10.0.0.6", state: "active", transactionSeconds: 3, blockedBy: [10], query: "SELECT pg_advisory_lock(…)"),
                .init(pid: 12, applicationName: "api", client: "10.0.0.7", state: "active", transactionSeconds: 1, blockedBy: [11], query: "UPDATE …"),
            ]
        )
        var renderer = LockSnapshotRenderer()
        renderer.knownNames[.hashed("payment:order-123")] = "payment:order-123"
        let text = renderer.render(snapshot)
        let lines = text.split(separator: "\n").map(String.init)
        let root = try #require(lines.firstIndex { $0.contains("● pid 10") })
        #expect(lines[root].contains("ROOT BLOCKER, 2 sessions waiting behind it"))
        #expect(lines[root + 1].contains("└ pid 11") && lines[root + 1].contains("waits 2.5s for advisory payment:order-123"))
        #expect(lines[root + 2].hasPrefix("    └ pid 12"))
        #expect(text.contains("idle in transaction"))
    }

    @Test func twoWaitersQueuedOnOneKeyAreCountedOnceAndEachShownOnce() throws {
        // pg_blocking_pids names everyone ahead in the queue: the second waiter is blocked by
        // the holder and by the first waiter.
        let key = LockKey.pair(namespace: 7, id: 42)
        let snapshot = LockSnapshot(
            takenAt: Date(timeIntervalSince1970: 0),
            locks: [
                .init(pid: 10, target: .advisory(key), mode: "ExclusiveLock", granted: true),
                .init(pid: 11, target: .advisory(key), mode: "ExclusiveLock", granted: false, waitingSeconds: 2),
                .init(pid: 12, target: .advisory(key), mode: "ExclusiveLock", granted: false, waitingSeconds: 1),
            ],
            sessions: [
                .init(pid: 10, applicationName: "a", client: "", state: "idle in transaction", transactionSeconds: 3, blockedBy: [], query: ""),
                .init(pid: 11, applicationName: "a", client: "", state: "active", transactionSeconds: 2, blockedBy: [10], query: ""),
                .init(pid: 12, applicationName: "a", client: "", state: "active", transactionSeconds: 1, blockedBy: [10, 11], query: ""),
            ]
        )
        let text = LockSnapshotRenderer().render(snapshot)
        #expect(text.contains("ROOT BLOCKER, 2 sessions waiting behind it"))
        let blocking = text.components(separatedBy: "LOCKS")[0]
        #expect(blocking.components(separatedBy: "pid 12").count == 2, "pid 12 is listed once")
        #expect(blocking.contains("behind pids 10, 11"))
    }

    @Test func topRunsAgainstAServerAndStops() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 2) { db in
            let (status, output) = try await pglock(["top", "--iterations", "2", "--interval", "100ms", "--database-url", db.settings.redactedURL])
            #expect(status == 0)
            #expect(output.components(separatedBy: "pglock top —").count == 3)
        }
    }

    @Test func doctorReportsASmallLockTable() async throws {
        let server = try await EphemeralPostgres.start(
            EphemeralPostgres.Configuration(maxConnections: 20, maxLocksPerTransaction: 10, disableDurability: true), logger: TestDatabase.logger
        )
        defer { Task { await server.shutdown() } }
        let (status, output) = try await pglock(["doctor", "--json", "--database-url", server.url()])
        #expect(status == 0)
        let diagnosis = try JSONDecoder().decode(ServerDiagnosis.self, from: Data(output.utf8))
        #expect(diagnosis.facts.lockTableCapacity == 10 * 20)
        let lockTable = diagnosis.verdicts.first { $0.check == "lock table" }
        #expect(lockTable?.detail.contains("of 200 entries") == true)
        #expect(diagnosis.verdicts.first { $0.check == "pooling proxy" }?.level == .ok)
    }
}
