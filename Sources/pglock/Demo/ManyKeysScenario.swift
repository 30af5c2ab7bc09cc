import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO

/// Workers locking random sets of keys: one at a time in the order given (deadlocks, each
/// costing `deadlock_timeout`), then through `withAdvisoryLocks` (sorted into one global
/// order, one round trip: none).
struct ManyKeysScenario: DemoScenario {
    var name: String { "many keys" }
    var workers = 8
    var keySpace: Int64 = 12
    var duration: Duration = .milliseconds(1500)

    func run(context: DemoContext) async throws -> [ScenarioOutcome] {
        var outcomes: [ScenarioOutcome] = []
        for sorted in [false, true] {
            context.progress.step("\(name): \(workers) workers locking 2–6 of \(keySpace) keys, \(sorted ? "withAdvisoryLocks (sorted, one round trip)" : "one by one in random order"), \(format(duration))")
            let (transactions, deadlocks) = try await race(context: context, sorted: sorted)
            let detail = "\(transactions) transactions, \(deadlocks) deadlocks (40P01)"
            context.progress.done(detail)
            outcomes.append(outcome(
                sorted ? "sorted: no deadlock" : (deadlocks > 0 ? "unsorted: deadlocks happen" : "unsorted: no deadlock this run"),
                passed: sorted ? deadlocks == 0 && transactions > 0 : nil,
                detail: detail
            ).rate(transactions, per: duration, unit: "tx/s"))
        }
        return outcomes
    }

    /// Counts committed transactions and deadlocks. A transaction whose connection was lost
    /// (it only read) is counted as a loss and not re-run: the loop goes on with new keys.
    private func race(context: DemoContext, sorted: Bool) async throws -> (Int, Int) {
        let client = context.client, logger = context.logger, keySpace = self.keySpace, faults = context.faults
        let end = ContinuousClock.now + duration
        // A worker that has not committed anything by the end (the server was restarting all
        // along) goes on until its first commit, for at most 30 s more.
        let giveUp = end + .seconds(30)
        return try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for _ in 0..<workers {
                group.addTask {
                    var done = 0, deadlocks = 0
                    var random = SystemRandomNumberGenerator()
                    while ContinuousClock.now < end || (done == 0 && ContinuousClock.now < giveUp) {
                        let count = Int.random(in: 2...6, using: &random)
                        let keys = (0..<count).map { _ in LockKey.pair(namespace: 0x5047_4C4B, id: Int32(Int64.random(in: 1...keySpace, using: &random))) }
                        do {
                            try await client.withCheckedTransaction(logger: logger) { tx in
                                if sorted {
                                    try await tx.advisoryLocks(keys.map { LockRequest($0) })
                                } else {
                                    for key in keys { try await tx.advisoryLock(key) }
                                }
                                try await tx.query("SELECT 1")
                            }
                            done += 1
                        } catch let error as PostgresLocksError where error.code == .deadlock {
                            deadlocks += 1
                        } catch where DemoContext.isConnectionFault(error) {
                            faults.connectionLost()
                            try await Task.sleep(for: .milliseconds(10))
                        }
                    }
                    return (done, deadlocks)
                }
            }
            return try await group.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
        }
    }
}
