#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging
@testable import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import ServiceLifecycle
import ServiceLifecycleTestKit
import Testing

/// An election with short intervals, so failures are noticed in tests' time.
private func makeElection(
    _ db: TestContext,
    name: String = "scheduler",
    instance: String,
    termsTable: QualifiedName = LeaderElection.Configuration.defaultTermsTable,
    heartbeatInterval: Duration = .milliseconds(200),
    responseTimeout: Duration = .seconds(30),  // generous: a loaded machine is slow, not silent
    retryInterval: Duration = .seconds(1),
    lockPollInterval: Duration = .milliseconds(100),
    logger: Logger? = nil
) throws -> LeaderElection {
    var configuration = LeaderElection.Configuration(name: name, connection: db.settings, termsTable: termsTable, instanceID: instance)
    configuration.retryInterval = retryInterval
    configuration.lockPollInterval = lockPollInterval
    configuration.heartbeatInterval = heartbeatInterval
    configuration.responseTimeout = responseTimeout
    configuration.reconnectDelay = .milliseconds(20)
    configuration.maximumReconnectDelay = .milliseconds(200)
    return try LeaderElection(configuration: configuration, logger: logger ?? db.logger)
}

/// The sessions (other than the checker's) that hold `key` in this test's database.
private func holders(of key: LockKey, _ db: TestContext) async throws -> [Int32] {
    let identity = key.pgLocksIdentity
    let rows = try await db.query("""
        SELECT pid FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND classid::int8 = \(Int64(identity.classid)) AND objid::int8 = \(Int64(identity.objid)) AND objsubid = \(Int32(identity.objsubid))
        """)
    return try rows.map { try $0.decode(Int32.self) }
}

/// The backends in this test's database that are running a follower's poll for the leader
/// lock (one statement that tries `pg_try_advisory_lock` every poll interval).
private func pollingBackends(_ db: TestContext) async throws -> [Int32] {
    try await db.query("""
        SELECT pid FROM pg_stat_activity
        WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()
          AND query LIKE '%pg_try_advisory_lock%'
        """).map { try $0.decode(Int32.self) }
}

/// Waits until every candidate but the leader has been seen polling for the lock, so that a
/// takeover is by a polling follower and not by a deposed leader that reconnected first.
/// Sightings accumulate across checks: a follower starts a new poll every retry interval, so
/// all of them are rarely seen in the same instant.
private func waitForPollingFollowers(_ elections: [LeaderElection], _ db: TestContext) async throws {
    let seen = LockedBox<Set<Int32>>([])
    try await waitUntil(timeout: .seconds(60), "every follower is seen polling for the lock") {
        let followers = elections.filter { !$0.isLeader }
        let pids = Set(followers.compactMap(\.sessionBackendPID))
        guard elections.count - followers.count == 1, pids.count == followers.count else { return false }
        let polling = try await pollingBackends(db)
        return seen.withLock { $0.formUnion(polling); return $0.isSuperset(of: pids) }
    }
}

/// Waiters (ungranted) on `key` in this test's database.
private func waiters(on key: LockKey, _ db: TestContext) async throws -> Int {
    let identity = key.pgLocksIdentity
    return try await db.scalar("""
        SELECT count(*)::int FROM pg_locks
        WHERE locktype = 'advisory' AND NOT granted
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND classid::int8 = \(Int64(identity.classid)) AND objid::int8 = \(Int64(identity.objid)) AND objsubid = \(Int32(identity.objsubid))
        """, as: Int.self)
}

/// The advisory locks `pid` holds or waits for.
private func advisoryLocks(of pid: Int32, _ db: TestContext) async throws -> Int {
    try await db.scalar("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = \(pid)", as: Int.self)
}

/// The stored term and holder of an election.
private func storedTerm(_ db: TestContext, election: String = "scheduler") async throws -> (Int64, String) {
    let rows = try await db.query("SELECT term, holder FROM pglocks_leader_terms WHERE election = \(election)")
    guard let row = rows.first else { throw TestFailure("no term row for \(election)") }
    return try row.decode((Int64, String).self)
}

/// Writes one ledger row fenced by `token`, in its own transaction.
private func fencedWrite(_ db: TestContext, _ token: FencingToken, note: String) async throws {
    try await db.client.withCheckedTransaction(logger: db.logger) { tx in
        try await tx.requireCurrentTerm(token)
        try await tx.query("INSERT INTO ledger (term, note) VALUES (\(token.term), \(note))")
    }
}

/// Runs every election in its own child task while `body` runs, then cancels them (which makes
/// each resign) and waits for all of them to return.
private func withRunning<Result: Sendable>(_ elections: [LeaderElection], _ body: () async throws -> Result) async throws -> Result {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for election in elections {
            group.addTask { try await election.run() }
        }
        do {
            let result = try await body()
            group.cancelAll()
            try await group.waitForAll()
            return result
        } catch {
            group.cancelAll()
            throw error
        }
    }
}

/// Keeps the warnings and errors logged to it, to prove that nothing failed and retried.
private struct CapturingLogHandler: LogHandler {
    let messages: LockedBox<[String]>
    var logLevel: Logger.Level = .warning
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        messages.withLock { $0.append("\(event.level): \(event.message) \(event.metadata ?? [:])") }
    }

    static func logger(into messages: LockedBox<[String]>) -> Logger {
        Logger(label: "captured") { _ in CapturingLogHandler(messages: messages) }
    }
}

private func milliseconds(_ duration: Duration) -> Int {
    Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
}

@Suite("Leader election")
struct LeaderElectionTests {
    @Test func exactlyOneOfThreeCandidatesLeadsAndHoldsTheLock() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let warnings = LockedBox<[String]>([])
            let elections = try ["a", "b", "c"].map { try makeElection(db, instance: $0, logger: CapturingLogHandler.logger(into: warnings)) }
            // Two subscribers per candidate, made before the election starts: both see everything.
            let streams = elections.map { election in (0..<2).map { _ in election.leadershipChanges() } }
            let changes = LockedBox<[String: [LeadershipChange]]>([:])
            try await withRunning(elections) {
                try await withThrowingTaskGroup(of: Void.self) { watchers in
                    for (index, pair) in streams.enumerated() {
                        for (subscriber, stream) in pair.enumerated() {
                            watchers.addTask {
                                for await change in stream { changes.withLock { $0["\(index)/\(subscriber)", default: []].append(change) } }
                            }
                        }
                    }
                    try await waitUntil(timeout: .seconds(60), "one candidate leads and all are connected") {
                        elections.filter(\.isLeader).count == 1 && elections.allSatisfy { $0.sessionBackendPID != nil }
                    }
                    // The followers keep polling for the lock; leadership must neither move nor double.
                    try await waitForPollingFollowers(elections, db)
                    let leaders = elections.filter(\.isLeader)
                    #expect(leaders.count == 1)
                    let leader = try #require(leaders.first)
                    let token = try #require(leader.currentToken)
                    #expect(token.term == 1)
                    #expect(try await holders(of: .hashed("scheduler"), db) == [leader.sessionBackendPID!])
                    let (term, holder) = try await storedTerm(db)
                    #expect(term == 1)
                    #expect(holder == leader.configuration.instanceID)
                    watchers.cancelAll()
                }
            }
            // Each subscriber saw its candidate's whole history: one leader, once, in term 1.
            let seen = changes.value
            let leaderEvents = seen.values.flatMap { $0 }.compactMap(\.token)
            #expect(leaderEvents.count == 2)
            #expect(Set(leaderEvents.map(\.term)) == [1])
            for index in 0..<3 {
                #expect(seen["\(index)/0"] == seen["\(index)/1"])
                #expect(seen["\(index)/0"]?.first == .follower)
            }
            #expect(warnings.value.isEmpty, "\(warnings.value)")
            // A follower stopped while polling closes its connection; its backend can take the lock
            // the resigning leader released a moment before it sees the close and exits.
            try await waitUntil(timeout: .seconds(60), "no session holds the lock") { try await holders(of: .hashed("scheduler"), db).isEmpty }
        }
    }

    @Test func killingTheLeadersBackendElectsAnotherWithALargerTokenAndFencesTheOldOne() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            try await db.query("CREATE TABLE ledger (term bigint NOT NULL, note text NOT NULL)")
            let elections = try ["a", "b", "c"].map { try makeElection(db, instance: $0) }
            try await withRunning(elections) {
                try await waitUntil(timeout: .seconds(60), "one candidate leads") { elections.contains { $0.isLeader } }
                try await waitForPollingFollowers(elections, db)
                let old = try #require(elections.first { $0.isLeader })
                let oldToken = try #require(old.currentToken)
                let oldPID = try #require(old.sessionBackendPID)
                try await fencedWrite(db, oldToken, note: "before failover")

                // The leader's session is the one named `pglocks-leader <instance>` that holds the lock.
                #expect(try await db.scalar("SELECT application_name FROM pg_stat_activity WHERE pid = \(oldPID)", as: String.self) == "pglocks-leader \(old.configuration.instanceID)")
                #expect(try await holders(of: .hashed("scheduler"), db) == [oldPID])

                let killed = ContinuousClock.now
                #expect(try await db.scalar("SELECT pg_terminate_backend(\(oldPID))", as: Bool.self))
                let noticed = LockedBox<Duration?>(nil)
                try await waitUntil(timeout: .seconds(5), "another candidate leads and the old leader knows it lost") {
                    if !old.isLeader { noticed.withLock { $0 = $0 ?? (ContinuousClock.now - killed) } }
                    return !old.isLeader && elections.contains { $0 !== old && $0.isLeader }
                }
                let failover = ContinuousClock.now - killed
                let new = try #require(elections.first { $0 !== old && $0.isLeader })
                let newToken = try #require(new.currentToken)
                print("leader failover after pg_terminate_backend: new leader in \(milliseconds(failover)) ms, old leader noticed in \(milliseconds(noticed.value ?? failover)) ms")

                #expect(newToken > oldToken)
                #expect(newToken.term == oldToken.term + 1)
                #expect(try await holders(of: .hashed("scheduler"), db) == [new.sessionBackendPID!])

                // The deposed leader's write is rejected; nothing of it is stored.
                let error = await #expect(throws: PostgresLocksError.self) {
                    try await fencedWrite(db, oldToken, note: "deposed leader")
                }
                #expect(error?.code == .fenced)
                try await fencedWrite(db, newToken, note: "new leader")
                let notes = try await db.query("SELECT note FROM ledger ORDER BY term, note").map { try $0.decode(String.self) }
                #expect(notes == ["before failover", "new leader"])

                // The killed instance reconnects and polls as a follower.
                try await waitUntil(timeout: .seconds(60), "the old leader reconnects") { old.sessionBackendPID.map { $0 != oldPID } ?? false }
                #expect(!old.isLeader)
                #expect(elections.filter(\.isLeader).count == 1)
            }
        }
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["DATABASE_URL"] == nil, "needs the local throwaway server, to freeze a backend"))
    func aLeaderWhoseServerGoesSilentLearnsItWithinTheHeartbeatBounds() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            try await db.query("CREATE TABLE ledger (term bigint NOT NULL, note text NOT NULL)")
            let elections = try ["a", "b"].map {
                try makeElection(db, instance: $0, heartbeatInterval: .milliseconds(200), responseTimeout: .milliseconds(800))
            }
            try await withRunning(elections) {
                try await waitUntil(timeout: .seconds(60), "one candidate leads") { elections.contains { $0.isLeader } }
                try await waitForPollingFollowers(elections, db)
                let old = try #require(elections.first { $0.isLeader })
                let other = try #require(elections.first { $0 !== old })
                let oldToken = try #require(old.currentToken)
                let oldPID = try #require(old.sessionBackendPID)

                // Freeze the leader's backend: its socket stays open but nothing answers, as
                // with a silent network failure. The server still holds the lock for it.
                let frozen = ContinuousClock.now
                #expect(kill(oldPID, SIGSTOP) == 0)
                let noticed: Duration
                do {
                    try await waitUntil(timeout: .seconds(60), "the leader notices that its server went silent") { !old.isLeader }
                    noticed = ContinuousClock.now - frozen
                    // Nobody else may lead while the frozen session holds the lock.
                    #expect(!other.isLeader)
                } catch {
                    kill(oldPID, SIGCONT)
                    throw error
                }
                #expect(kill(oldPID, SIGCONT) == 0)
                print("silent leader noticed the loss after \(milliseconds(noticed)) ms (heartbeat 200 ms + response timeout 800 ms)")
                // A heartbeat sent up to one interval before the stop already runs its deadline.
                #expect(noticed >= .milliseconds(800) - .milliseconds(200) - .milliseconds(100))
                #expect(noticed < .seconds(3))

                // Resumed, the backend finds its client gone and exits; a polling session takes over.
                try await waitUntil(timeout: .seconds(60), "a new term starts") { elections.contains { ($0.currentToken?.term ?? 0) == oldToken.term + 1 } }
                let error = await #expect(throws: PostgresLocksError.self) { try await fencedWrite(db, oldToken, note: "silent leader") }
                #expect(error?.code == .fenced)
            }
        }
    }

    @Test func aFencedTransactionInFlightCommitsBeforeTheNextTermStarts() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 6) { db in
            try await db.query("CREATE TABLE ledger (term bigint NOT NULL, note text NOT NULL)")
            // A long response timeout: the new leader's term bump waits for the test's transaction.
            let elections = try ["a", "b"].map { try makeElection(db, instance: $0, responseTimeout: .seconds(30)) }
            try await withRunning(elections) {
                try await waitUntil(timeout: .seconds(60), "one candidate leads") { elections.contains { $0.isLeader } }
                try await waitForPollingFollowers(elections, db)
                let old = try #require(elections.first { $0.isLeader })
                let other = try #require(elections.first { $0 !== old })
                let oldToken = try #require(old.currentToken)
                let oldPID = try #require(old.sessionBackendPID)
                let checked = LockedBox(false)
                let (release, releaseContinuation) = AsyncStream<Void>.makeStream()

                async let write: Void = db.client.withCheckedTransaction(logger: db.logger) { tx in
                    try await tx.requireCurrentTerm(oldToken)
                    checked.withLock { $0 = true }
                    for await _ in release { break }
                    try await tx.query("INSERT INTO ledger (term, note) VALUES (\(oldToken.term), 'in flight')")
                }
                try await waitUntil(timeout: .seconds(60), "the fenced transaction has checked its term") { checked.value }
                #expect(try await db.scalar("SELECT pg_terminate_backend(\(oldPID))", as: Bool.self))

                // The other candidate takes the lock, but its term bump waits for the row share lock.
                try await waitUntil(timeout: .seconds(60), "the new term waits for the fenced transaction") {
                    try await db.scalar("""
                        SELECT count(*)::int FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                        WHERE NOT l.granted AND l.locktype IN ('transactionid', 'tuple') AND a.application_name LIKE 'pglocks-leader %'
                        """, as: Int.self) > 0
                }
                // No newer term has started while the fenced transaction is open.
                #expect(!other.isLeader)
                #expect(try await storedTerm(db).0 == oldToken.term)
                releaseContinuation.yield()
                try await write
                try await waitUntil(timeout: .seconds(60), "the other candidate leads") { other.isLeader }
                #expect(other.currentToken?.term == oldToken.term + 1)
                #expect(try await db.scalar("SELECT count(*)::int FROM ledger WHERE term = \(oldToken.term)", as: Int.self) == 1)
                // From now on the old token is fenced.
                let error = await #expect(throws: PostgresLocksError.self) { try await fencedWrite(db, oldToken, note: "too late") }
                #expect(error?.code == .fenced)
            }
        }
    }

    @Test func followersPollWithoutWaitingInPgLocksOrLoggingLockTimeoutsAndTakeOverPromptly() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let key = LockKey.hashed("scheduler")
            let retryInterval = Duration.milliseconds(300)
            let elections = try ["a", "b", "c"].map {
                try makeElection(db, instance: $0, retryInterval: retryInterval, lockPollInterval: .milliseconds(50))
            }
            // The server's log from here on (the shared throwaway server; none with DATABASE_URL).
            let logFile = db.server.ephemeral?.logFile
            let logStart = try logFile.map { try FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int ?? 0 } ?? 0
            try await withRunning(elections) {
                try await waitUntil(timeout: .seconds(60), "one candidate leads and all are connected") {
                    elections.filter(\.isLeader).count == 1 && elections.allSatisfy { $0.sessionBackendPID != nil }
                }
                let leader = try #require(elections.first { $0.isLeader })
                let followerPIDs = elections.filter { $0 !== leader }.compactMap(\.sessionBackendPID)
                try #require(followerPIDs.count == 2)
                let rollbacksBefore = try await db.scalar("SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()", as: Int64.self)

                // Watch until each follower has started three polls (more than two retry
                // intervals): no sighting may find a waiter on the election's lock.
                let pollStarts = LockedBox<[Int32: Set<Date>]>([:])
                let waitersSeen = LockedBox(0)
                try await waitUntil(timeout: .seconds(60), "each follower has started three polls") {
                    let waiting = try await waiters(on: key, db)
                    waitersSeen.withLock { $0 += waiting }
                    let rows = try await db.query("""
                        SELECT pid, query_start FROM pg_stat_activity
                        WHERE pid = ANY(\(followerPIDs)) AND state = 'active' AND query LIKE '%pg_try_advisory_lock%'
                        """)
                    for row in rows {
                        let (pid, started) = try row.decode((Int32, Date).self)
                        pollStarts.withLock { _ = $0[pid, default: []].insert(started) }
                    }
                    return pollStarts.value.count == 2 && pollStarts.value.values.allSatisfy { $0.count >= 3 }
                }
                // (a) Nobody waits in the lock queue: monitoring sees a holder, no blocked session.
                #expect(waitersSeen.value == 0)
                #expect(try await waiters(on: key, db) == 0)
                #expect(leader.isLeader)
                #expect(leader.currentToken?.term == 1)
                #expect(try await holders(of: key, db) == [leader.sessionBackendPID!])

                // (b) No poll ended in an error: no "lock timeout" line of the followers'
                // backends in the server's log, and no rolled-back transaction in the database.
                // A control: a session of the test that does time out on the lock is logged.
                let rollbacksBeforeControl = try await db.scalar("SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()", as: Int64.self)
                #expect(rollbacksBeforeControl == rollbacksBefore)
                let control = try await db.makeConnection()
                let controlPID = try await control.query("SELECT pg_backend_pid()", logger: db.logger).collect()[0].decode(Int32.self)
                _ = try await control.query("SELECT set_config('lock_timeout', '1ms', false)", logger: db.logger).collect()
                await #expect(throws: (any Error).self) {
                    _ = try await control.query("SELECT pg_advisory_lock(\(key.int64Value!))", logger: db.logger).collect()
                }
                try await control.close()
                if let logFile {
                    let handle = try #require(FileHandle(forReadingAtPath: logFile))
                    try handle.seek(toOffset: UInt64(logStart))
                    let log = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
                    try handle.close()
                    let timeouts = log.split(separator: "\n").filter { line in
                        line.contains("lock timeout") && followerPIDs.contains { line.contains("[\($0)]") }
                    }
                    #expect(timeouts.isEmpty, "\(timeouts)")
                    #expect(log.split(separator: "\n").contains { $0.contains("[\(controlPID)]") && $0.contains("lock timeout") }, "the control's lock timeout is not in the log read")
                }

                // (c) Killing the leader's backend: a follower takes over within a few polls.
                let oldPID = try #require(leader.sessionBackendPID)
                let killed = ContinuousClock.now
                #expect(try await db.scalar("SELECT pg_terminate_backend(\(oldPID))", as: Bool.self))
                try await waitUntil(timeout: .seconds(10), "a follower leads") { elections.contains { $0 !== leader && $0.isLeader } }
                let takeover = ContinuousClock.now - killed
                print("leader takeover with 50 ms polls: \(milliseconds(takeover)) ms")
                #expect(takeover < .seconds(3))
                let new = try #require(elections.first { $0 !== leader && $0.isLeader })
                #expect(new.currentToken?.term == 2)
                #expect(try await holders(of: key, db) == [new.sessionBackendPID!])
            }
        }
    }

    @Test func aPollTakesTheLockOnceAndStopsAtTheFirstSuccess() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 2) { db in
            let key = LockKey.pair(namespace: 7, id: 11)
            let holder = try await db.makeConnection()
            let poller = try await db.makeConnection()
            do {
                _ = try await holder.query("SELECT pg_advisory_lock(7, 11)", logger: db.logger).collect()
                let pollerPID = try await poller.query("SELECT pg_backend_pid()", logger: db.logger).collect()[0].decode(Int32.self)
                // Held elsewhere: every attempt fails, the answer is false and nothing is taken.
                let refused = try await poller.query(AdvisoryLockSQL.pollSessionLock(key, mode: .exclusive, attempts: 3, stepMilliseconds: 10).query, logger: db.logger).collect()
                #expect(try refused[0].decode(String.self) == "false")
                #expect(try await advisoryLocks(of: pollerPID, db) == 0)

                // Freed while the poll runs (once the poller is seen polling): taken, exactly once.
                async let polled = poller.query(AdvisoryLockSQL.pollSessionLock(key, mode: .exclusive, attempts: 100_000, stepMilliseconds: 10).query, logger: db.logger).collect()
                try await waitUntil(timeout: .seconds(60), "the poller is polling") { try await pollingBackends(db).contains(pollerPID) }
                _ = try await holder.query("SELECT pg_advisory_unlock(7, 11)", logger: db.logger).collect()
                #expect(try await polled[0].decode(String.self) == "true")
                // Session locks stack: one unlock must free it, and a second finds nothing.
                let (first, second) = try await poller.query("SELECT pg_advisory_unlock(7, 11), pg_advisory_unlock(7, 11)", logger: db.logger).collect()[0].decode((Bool, Bool).self)
                #expect(first)
                #expect(!second)
                #expect(try await advisoryLocks(of: pollerPID, db) == 0)
            } catch {
                try? await holder.close()
                try? await poller.close()
                throw error
            }
            try await holder.close()
            try await poller.close()
        }
    }

    @Test func gracefulShutdownResignsAtOnceAndAnotherCandidateLeads() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let first = try makeElection(db, instance: "first")
            let others = try ["b", "c"].map { try makeElection(db, instance: $0) }
            let trigger = LockedBox<GracefulShutdownTestTrigger?>(nil)
            let firstReturned = LockedBox(false)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await testGracefulShutdown { shutdown in
                        trigger.withLock { $0 = shutdown }
                        try await first.run()
                        firstReturned.withLock { $0 = true }
                    }
                }
                try await waitUntil(timeout: .seconds(60), "the first candidate leads") { first.isLeader }
                let firstPID = try #require(first.sessionBackendPID)
                let firstToken = try #require(first.currentToken)
                let firstChanges = first.leadershipChanges()
                try await withRunning(others) {
                    try await waitUntil(timeout: .seconds(60), "the others queue") { others.allSatisfy { $0.sessionBackendPID != nil } }
                    #expect(!others.contains { $0.isLeader })

                    let started = ContinuousClock.now
                    try #require(trigger.value).triggerGracefulShutdown()
                    try await waitUntil(timeout: .seconds(60), "the first returns and another candidate leads") {
                        firstReturned.value && others.contains { $0.isLeader }
                    }
                    print("leader handover on graceful shutdown: \(milliseconds(ContinuousClock.now - started)) ms")
                    let new = try #require(others.first { $0.isLeader })
                    #expect(new.currentToken?.term == firstToken.term + 1)
                    #expect(try await advisoryLocks(of: firstPID, db) == 0)
                    #expect(try await holders(of: .hashed("scheduler"), db) == [new.sessionBackendPID!])
                    try await waitUntil(timeout: .seconds(60), "the resigned session is gone") {
                        try await db.scalar("SELECT count(*)::int FROM pg_stat_activity WHERE pid = \(firstPID)", as: Int.self) == 0
                    }
                }
                try await group.waitForAll()
                // The stream saw the term, then the resignation, and finished.
                var seen: [LeadershipChange] = []
                for await change in firstChanges { seen.append(change) }
                #expect(seen == [.leader(firstToken), .follower])
                #expect(!first.isLeader)
                #expect(first.sessionBackendPID == nil)
            }
        }
    }

    @Test func cancellingRunResignsAtOnce() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let first = try makeElection(db, instance: "first")
            let second = try makeElection(db, instance: "second")
            let running = Task { try await first.run() }
            try await waitUntil(timeout: .seconds(60), "the first candidate leads") { first.isLeader }
            let firstPID = try #require(first.sessionBackendPID)
            try await withRunning([second]) {
                try await waitUntil(timeout: .seconds(60), "the second candidate queues") { second.sessionBackendPID != nil }
                let started = ContinuousClock.now
                running.cancel()
                try await running.value
                try await waitUntil(timeout: .seconds(60), "the second candidate leads") { second.isLeader }
                print("leader handover on cancellation: \(milliseconds(ContinuousClock.now - started)) ms")
                #expect(!first.isLeader)
                #expect(try await advisoryLocks(of: firstPID, db) == 0)
                #expect(second.currentToken?.term == 2)
            }
        }
    }

    @Test func withLeadershipCancelsTheWorkWhenLeadershipIsLost() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 4) { db in
            let election = try makeElection(db, instance: "solo")
            try await withRunning([election]) {
                let started = LockedBox<FencingToken?>(nil)
                let cancelled = LockedBox(false)
                let work = Task { try await election.withLeadership { token in
                    started.withLock { $0 = token }
                    let (never, continuation) = AsyncStream<Void>.makeStream()
                    for await _ in never {}
                    cancelled.withLock { $0 = Task.isCancelled }
                    continuation.finish()
                } }
                try await waitUntil(timeout: .seconds(60), "the work runs as leader") { started.value != nil }
                let pid = try #require(election.sessionBackendPID)
                #expect(try await db.scalar("SELECT pg_terminate_backend(\(pid))", as: Bool.self))
                let error = await #expect(throws: PostgresLocksError.self) { try await work.value }
                #expect(error?.code == .lockLost)
                #expect(cancelled.value)
                // The instance leads again after reconnecting, in a new term.
                try await waitUntil(timeout: .seconds(60), "the instance leads again") { (election.currentToken?.term ?? 0) > (started.value?.term ?? 0) }
            }
        }
    }

    @Test func invalidConfigurationIsRejectedBeforeConnecting() async throws {
        // Port 1 on localhost: nothing listens, so any attempt to connect would fail differently.
        let unreachable = try ConnectionSettings(url: "postgres://nobody@127.0.0.1:1/nowhere")
        let badTable = #expect(throws: PostgresLocksError.self) {
            try LeaderElection.Configuration(name: "jobs", connection: unreachable, termsTable: "leader terms")
        }
        #expect(badTable?.code == .invalidArgument)
        let badSchema = #expect(throws: PostgresLocksError.self) {
            try LeaderElection.Configuration(name: "jobs", connection: unreachable, termsTable: "terms", schema: "public\"; DROP TABLE x; --")
        }
        #expect(badSchema?.code == .invalidArgument)

        var zeroHeartbeat = LeaderElection.Configuration(name: "jobs", connection: unreachable)
        zeroHeartbeat.heartbeatInterval = .zero
        #expect(throws: PostgresLocksError.self) { try LeaderElection(configuration: zeroHeartbeat, logger: Logger(label: "test")) }
        let emptyName = #expect(throws: PostgresLocksError.self) {
            try LeaderElection(configuration: .init(name: "", connection: unreachable), logger: Logger(label: "test"))
        }
        #expect(emptyName?.code == .invalidArgument)
    }

    @Test func aTermsTableThatCannotBeCreatedEndsRunWithATypedError() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 2) { db in
            let election = try makeElection(db, instance: "a", termsTable: QualifiedName(schema: "no_such_schema", "terms"))
            let error = try await withinTimeLimit(.seconds(30), "run() with a missing schema") {
                await #expect(throws: PostgresLocksError.self) { try await election.run() }
            }
            #expect(error?.sqlState == "3F000")
            #expect(!election.isLeader)
        }
    }

    @Test func concurrentStartsCreateTheTermsTableWithoutFailing() async throws {
        try await TestDatabase.withDatabase(maximumConnections: 2) { db in
            let table = try QualifiedName("fresh_terms")
            let warnings = LockedBox<[String]>([])
            let logger = CapturingLogHandler.logger(into: warnings)
            // A generous response timeout: under a loaded machine a slow answer is not what this test is about.
            let elections = try (0..<8).map { try makeElection(db, instance: "i\($0)", termsTable: table, responseTimeout: .seconds(30), logger: logger) }
            try await withRunning(elections) {
                try await waitForPollingFollowers(elections, db)
                // No session failed creating the table (a failure is logged, then retried).
                #expect(warnings.value.isEmpty, "\(warnings.value)")
                #expect(try await db.scalar("SELECT term FROM fresh_terms WHERE election = 'scheduler'", as: Int64.self) == 1)
            }
        }
    }
}
