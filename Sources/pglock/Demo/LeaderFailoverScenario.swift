import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO

/// Leader election with fencing: three candidates compete; the leader's backend is killed
/// (`pg_terminate_backend`) a few times. Each time a new term must begin within a bound (any
/// candidate may win it, the deposed one too once reconnected), with a larger fencing token, and a write fenced with the deposed leader's token must be
/// rejected while the new leader's succeeds. Finally the leader is stopped as on shutdown and
/// must hand over at once.
///
/// Outside faults (other backends terminated, a server restart) are survived: every write is
/// fenced and retried only if it did not commit; a round during which the server restarted, or
/// whose leader someone else had already deposed, measures nothing and is run again.
struct LeaderFailoverScenario: DemoScenario {
    var needsServerSession: Bool { true }
    var name: String { "leader failover" }
    var candidates = 3
    var kills = 3
    /// The longest a failover may take for the check to pass.
    var bound: Duration = .seconds(3)

    func run(context: DemoContext) async throws -> [ScenarioOutcome] {
        let termsTable = try QualifiedName("pglock_demo_leader_terms")
        let ledger = try QualifiedName("pglock_demo_leader_ledger")
        return try await context.withScratchTables([termsTable, ledger]) { tx in
            try await tx.query("CREATE TABLE \(identifier: ledger) (term bigint NOT NULL, note text NOT NULL)")
        } run: {
            // The kills below make each deposed leader log a warning; they are expected here.
            let electionLogger = context.quietLogger
            let elections = try (1...candidates).map { index in
                var configuration = LeaderElection.Configuration(
                    name: "pglock-demo", connection: context.settings, termsTable: termsTable,
                    instanceID: "candidate-\(index)"
                )
                configuration.heartbeatInterval = .milliseconds(250)
                configuration.retryInterval = .seconds(1)
                configuration.responseTimeout = .seconds(2)
                configuration.reconnectDelay = .milliseconds(50)
                return try LeaderElection(configuration: configuration, logger: electionLogger)
            }
            let running = elections.map { election in Task { try await election.run() } }
            defer { for task in running { task.cancel() } }

            context.progress.step("\(name): \(candidates) candidates; killing the leader's backend \(kills) times")
            var failovers: [Duration] = []
            var noticed: [Duration] = []
            var tokensGrew = true
            var fencedRejected = 0
            var newWritesAccepted = 0
            var withinBound = true
            // Rounds that cannot measure a failover are run again (at most `2 × kills` of them): the
            // server restarted during the round (then no leader can exist for a while, whatever
            // the election does), or the leader had already been deposed by someone else.
            var redone = 0
            while failovers.count < kills && redone <= 2 * kills {
                let round = failovers.count + 1
                let serverStarted = try await context.serverStartTime()
                // The leader of this round, its token proven current by a fenced write.
                guard let (leader, oldToken) = try await leaderWithAcceptedWrite(context, elections, ledger, note: "round \(round): leader before the kill") else {
                    return [outcome("a leader is elected", passed: false, detail: "no leader within \(format(Self.settleLimit))")]
                }
                guard let pid = leader.sessionBackendPID else { redone += 1; continue }
                // Measure takeover by a polling follower: every other candidate must have a
                // session polling for the lock first (after a server restart a candidate may still
                // be in its reconnect backoff, up to `maximumReconnectDelay`, longer than `bound`).
                guard try await waitForFollowersPolling(context, elections, leader: leader) else {
                    redone += 1
                    continue
                }
                let killed = ContinuousClock.now
                let terminated = try await context.idempotentQuery("SELECT pg_terminate_backend(\(pid))").rows[0].decode(Bool.self)
                let deposed = leader
                let noticedTask = Task { () -> Duration? in
                    let deadline = killed + Self.settleLimit
                    while deposed.currentToken?.term == oldToken.term {
                        guard ContinuousClock.now < deadline else { return nil }
                        try await Task.sleep(for: .milliseconds(1))
                    }
                    return ContinuousClock.now - killed
                }
                // The next term may go to any candidate, the deposed one too once it has reconnected
                // (followers poll, so whoever tries first after the lock is freed wins).
                let next = try await waitForNewTerm(elections, after: oldToken, within: bound)
                let elapsed = ContinuousClock.now - killed
                let restarted = try await context.serverStartTime() != serverStarted
                if !terminated || restarted {
                    noticedTask.cancel()
                    redone += 1
                    continue
                }
                guard let next, let newToken = next.currentToken else {
                    withinBound = false
                    noticedTask.cancel()
                    break
                }
                failovers.append(elapsed)
                if let knew = try await noticedTask.value { noticed.append(knew) }
                if !(newToken > oldToken) { tokensGrew = false }
                do {
                    try await fencedWrite(context, ledger, oldToken, note: "round \(round): deposed leader")
                } catch let error as PostgresLocksError where error.code == .fenced {
                    fencedRejected += 1
                }
                // The new leader's write (if someone else deposed it meanwhile, its successor's).
                if try await leaderWithAcceptedWrite(context, elections, ledger, note: "round \(round): new leader") != nil {
                    newWritesAccepted += 1
                }
            }
            let rounds = failovers.count
            let deposedRows = try await context.idempotentQuery(
                "SELECT count(*)::int8 FROM \(identifier: ledger) WHERE note LIKE '%deposed%'"
            ).rows[0].decode(Int64.self)

            // Resignation: stop the current leader as a graceful shutdown would. A handover that
            // spanned a server restart measures the restart: the next leader resigns instead.
            var handover: Duration?
            var successorTerm: Int64?
            var stoppedCount = 0
            while handover == nil && stoppedCount < candidates - 1 {
                guard let (leader, _) = try await leaderWithAcceptedWrite(context, elections, ledger, note: "before resignation") else { break }
                let serverStarted = try await context.serverStartTime()
                let stopped = ContinuousClock.now
                let index = elections.firstIndex { $0 === leader }!
                running[index].cancel()
                stoppedCount += 1
                let successor = try await waitForLeader(elections, other: leader, within: bound)
                let elapsed = ContinuousClock.now - stopped
                try await running[index].value
                let restarted = try await context.serverStartTime() != serverStarted
                if restarted {
                    redone += 1
                    continue
                }
                handover = successor == nil ? nil : elapsed
                successorTerm = successor?.currentToken?.term
                if successor == nil { break }
            }

            for task in running { task.cancel() }
            for task in running { try await task.value }

            let failoverText = failovers.map(format).joined(separator: ", ")
            let noticedText = noticed.map(format).joined(separator: ", ")
            let redoneText = redone > 0 ? "; \(redone) rounds run again (a server restart or an outside kill came in between)" : ""
            context.progress.done("failovers \(failoverText); deposed leaders knew after \(noticedText); handover on shutdown \(handover.map(format) ?? "none")\(redoneText)")
            return [
                outcome(
                    "leader killed: a new term within \(format(bound)), larger token",
                    passed: withinBound && rounds == kills && tokensGrew,
                    detail: "\(rounds)/\(kills) failovers in \(failoverText); deposed leader knew after \(noticedText)\(redoneText)"
                ),
                outcome(
                    "deposed leader's write fenced, new leader's accepted",
                    passed: fencedRejected == kills && newWritesAccepted == kills && deposedRows == 0,
                    detail: "\(fencedRejected)/\(kills) old-token writes rejected, \(deposedRows) stored; \(newWritesAccepted)/\(kills) new-token writes stored"
                ),
                outcome(
                    "leader resigns on shutdown: handover at once",
                    passed: handover.map { $0 < bound } ?? false,
                    detail: "next leader after \(handover.map(format) ?? "none (no successor within \(format(bound)))"), term \(successorTerm.map(String.init) ?? "none")"
                ),
            ]
        }
    }

    /// How long the scenario waits for a settled leader outside the measured failovers (the
    /// start, after a server restart): long enough for a restart on a loaded machine.
    static let settleLimit: Duration = .seconds(30)

    /// The current leader and its token, proven current by a fenced write of `note`; if the
    /// leader is deposed before the write lands (its write is fenced), the next one is asked.
    /// `nil` if no leader's write lands within ``settleLimit``.
    private func leaderWithAcceptedWrite(
        _ context: DemoContext, _ elections: [LeaderElection], _ ledger: QualifiedName, note: String
    ) async throws -> (LeaderElection, FencingToken)? {
        let deadline = ContinuousClock.now + Self.settleLimit
        while ContinuousClock.now < deadline {
            guard let leader = try await waitForLeader(elections, other: nil, within: deadline - ContinuousClock.now) else { return nil }
            guard let token = leader.currentToken else { continue }
            do {
                try await fencedWrite(context, ledger, token, note: note)
                return (leader, token)
            } catch let error as PostgresLocksError where error.code == .fenced {
                continue  // deposed between reading the token and the write: ask the next leader
            }
        }
        return nil
    }

    /// Polls until a candidate leads with a term after `token`'s, for at most `limit`.
    private func waitForNewTerm(_ elections: [LeaderElection], after token: FencingToken, within limit: Duration) async throws -> LeaderElection? {
        try await waitForLeader(elections, within: limit) { ($0.currentToken?.term ?? .min) > token.term }
    }

    /// Polls until a candidate other than `other` leads, for at most `limit`.
    private func waitForLeader(_ elections: [LeaderElection], other: LeaderElection?, within limit: Duration) async throws -> LeaderElection? {
        try await waitForLeader(elections, within: limit) { $0 !== other && $0.isLeader }
    }

    /// Polls until a candidate matches `leads`, for at most `limit`.
    private func waitForLeader(_ elections: [LeaderElection], within limit: Duration, where leads: (LeaderElection) -> Bool) async throws -> LeaderElection? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let leader = elections.first(where: leads) { return leader }
            try await Task.sleep(for: .milliseconds(1))
        }
        return nil
    }

    /// Polls until every candidate but `leader` has a session running its lock poll (active
    /// in `pg_stat_activity`), for at most ``settleLimit``; false if they never all do, or if
    /// `leader` stops leading meanwhile.
    private func waitForFollowersPolling(_ context: DemoContext, _ elections: [LeaderElection], leader: LeaderElection) async throws -> Bool {
        let deadline = ContinuousClock.now + Self.settleLimit
        while ContinuousClock.now < deadline && leader.isLeader {
            let pids = elections.filter { $0 !== leader }.compactMap(\.sessionBackendPID)
            if pids.count == elections.count - 1 {
                let polling = try await context.idempotentQuery(
                    "SELECT count(*)::int8 FROM pg_stat_activity WHERE pid = ANY(\(pids)) AND state = 'active'"
                ).rows[0].decode(Int64.self)
                if polling == pids.count { return true }
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        return false
    }

    /// A write fenced by `token`, re-run after a lost connection only if it did not commit.
    private func fencedWrite(_ context: DemoContext, _ ledger: QualifiedName, _ token: FencingToken, note: String) async throws {
        try await context.transaction { tx in
            try await tx.requireCurrentTerm(token)
            try await tx.query("INSERT INTO \(identifier: ledger) (term, note) VALUES (\(token.term), \(note))")
        }
    }
}
