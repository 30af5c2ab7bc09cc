import Logging
import PostgresLocks
import PostgresNIO

/// Leader election with fencing: three candidates compete; the leader's backend is killed
/// (`pg_terminate_backend`) a few times. Each time another candidate must lead within a bound,
/// with a larger fencing token, and a write fenced with the deposed leader's token must be
/// rejected while the new leader's succeeds. Finally the leader is stopped as on shutdown and
/// must hand over at once.
struct LeaderFailoverScenario: DemoScenario {
    var name: String { "leader failover" }
    var candidates = 3
    var kills = 3
    /// The longest a failover may take for the check to pass.
    var bound: Duration = .seconds(3)

    func run(context: DemoContext) async throws -> [ScenarioOutcome] {
        let logger = context.logger
        let termsTable = try QualifiedName("pglock_demo_leader_terms")
        let ledger = try QualifiedName("pglock_demo_leader_ledger")
        try await context.client.withCheckedTransaction(logger: logger) { tx in
            try await tx.query("DROP TABLE IF EXISTS \(identifier: termsTable)")
            try await tx.query("DROP TABLE IF EXISTS \(identifier: ledger)")
            try await tx.query("CREATE TABLE \(identifier: ledger) (term bigint NOT NULL, note text NOT NULL)")
        }

        // The kills below make each deposed leader log a warning; they are expected here.
        var electionLogger = logger
        if electionLogger.logLevel == .warning { electionLogger.logLevel = .error }
        let elections = try (1...candidates).map { index in
            var configuration = LeaderElection.Configuration(
                name: "pglock-demo", connection: context.settings, termsTable: termsTable,
                instanceID: "candidate-\(index)", logger: electionLogger
            )
            configuration.heartbeatInterval = .milliseconds(250)
            configuration.retryInterval = .seconds(1)
            configuration.responseTimeout = .seconds(2)
            configuration.reconnectDelay = .milliseconds(50)
            return try LeaderElection(configuration: configuration)
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
        guard var leader = try await waitForLeader(elections, other: nil, within: bound) else {
            return [ScenarioOutcome(scenario: name, check: "a leader is elected", passed: false, detail: "no leader within \(format(bound))")]
        }
        for round in 1...kills {
            let oldToken = leader.currentToken!
            try await fencedWrite(context, ledger, oldToken, note: "round \(round): leader before the kill")
            guard let pid = leader.sessionBackendPID else { break }
            // Measure takeover by a queued follower: let the last round's victim reconnect first.
            try await waitForFollowersQueued(context, count: candidates - 1)
            let killed = ContinuousClock.now
            _ = try await context.client.withCheckedTransaction(logger: logger) { tx in
                try await tx.query("SELECT pg_terminate_backend(\(pid))")
            }
            let deposed = leader
            let noticedTask = Task { () -> Duration in
                while deposed.isLeader { try await Task.sleep(for: .milliseconds(1)) }
                return ContinuousClock.now - killed
            }
            guard let next = try await waitForLeader(elections, other: deposed, within: bound) else {
                withinBound = false
                noticedTask.cancel()
                break
            }
            failovers.append(ContinuousClock.now - killed)
            noticed.append(try await noticedTask.value)
            let newToken = next.currentToken!
            if !(newToken > oldToken) { tokensGrew = false }
            do {
                try await fencedWrite(context, ledger, oldToken, note: "round \(round): deposed leader")
            } catch let error as PostgresLocksError where error.code == .fenced {
                fencedRejected += 1
            }
            try await fencedWrite(context, ledger, newToken, note: "round \(round): new leader")
            newWritesAccepted += 1
            leader = next
        }
        let deposedRows = try await context.client.withCheckedTransaction(logger: logger) { tx in
            try await tx.query("SELECT count(*)::int8 FROM \(identifier: ledger) WHERE note LIKE '%deposed%'")
        }.rows[0].decode(Int64.self)

        // Resignation: stop the current leader as a graceful shutdown would.
        let stopped = ContinuousClock.now
        let index = elections.firstIndex { $0 === leader }!
        running[index].cancel()
        let successor = try await waitForLeader(elections, other: leader, within: bound)
        let handover = ContinuousClock.now - stopped
        let successorTerm = successor?.currentToken?.term
        try await running[index].value

        for task in running { task.cancel() }
        for task in running { try await task.value }
        if !context.keepTables {
            try await context.client.withCheckedTransaction(logger: logger) { tx in
                try await tx.query("DROP TABLE IF EXISTS \(identifier: termsTable)")
                try await tx.query("DROP TABLE IF EXISTS \(identifier: ledger)")
            }
        }

        let rounds = failovers.count
        let failoverText = failovers.map(format).joined(separator: ", ")
        let noticedText = noticed.map(format).joined(separator: ", ")
        context.progress.done("failovers \(failoverText); deposed leaders knew after \(noticedText); handover on shutdown \(format(handover))")
        return [
            ScenarioOutcome(
                scenario: name, check: "leader killed: another leads within \(format(bound)), larger token",
                passed: withinBound && rounds == kills && tokensGrew,
                detail: "\(rounds)/\(kills) failovers in \(failoverText); deposed leader knew after \(noticedText)"
            ),
            ScenarioOutcome(
                scenario: name, check: "deposed leader's write fenced, new leader's accepted",
                passed: fencedRejected == kills && newWritesAccepted == kills && deposedRows == 0,
                detail: "\(fencedRejected)/\(kills) old-token writes rejected, \(deposedRows) stored; \(newWritesAccepted)/\(kills) new-token writes stored"
            ),
            ScenarioOutcome(
                scenario: name, check: "leader resigns on shutdown: handover at once",
                passed: successor != nil && handover < bound,
                detail: "next leader after \(format(handover)), term \(successorTerm.map(String.init) ?? "none")"
            ),
        ]
    }

    /// Polls until a candidate other than `other` leads, for at most `limit`.
    private func waitForLeader(_ elections: [LeaderElection], other: LeaderElection?, within limit: Duration) async throws -> LeaderElection? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let leader = elections.first(where: { $0 !== other && $0.isLeader }) { return leader }
            try await Task.sleep(for: .milliseconds(1))
        }
        return nil
    }

    /// Polls until `count` sessions wait for an advisory lock (the followers' queue), for at most `bound`.
    private func waitForFollowersQueued(_ context: DemoContext, count: Int) async throws {
        let deadline = ContinuousClock.now + bound
        while ContinuousClock.now < deadline {
            let waiting = try await context.client.withCheckedTransaction(logger: context.logger) { tx in
                try await tx.query("""
                    SELECT count(DISTINCT pid)::int8 FROM pg_locks
                    WHERE locktype = 'advisory' AND NOT granted
                      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                    """)
            }.rows[0].decode(Int64.self)
            if waiting >= count { return }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    private func fencedWrite(_ context: DemoContext, _ ledger: QualifiedName, _ token: FencingToken, note: String) async throws {
        try await context.client.withCheckedTransaction(logger: context.logger) { tx in
            try await tx.requireCurrentTerm(token)
            try await tx.query("INSERT INTO \(identifier: ledger) (term, note) VALUES (\(token.term), \(note))")
        }
    }
}
