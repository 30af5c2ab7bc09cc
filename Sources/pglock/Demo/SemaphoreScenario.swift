import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO
import Synchronization

/// A fleet-wide semaphore: many workers take one of three permits to run a short transaction;
/// the holders of the permits are counted in `pg_locks` throughout, from a session of their own
/// and from inside each holder's transaction.
struct SemaphoreScenario: DemoScenario {
    var name: String { "semaphore" }
    var workers = 12
    var permits = 3
    var duration: Duration = .milliseconds(1500)

    func run(context: DemoContext) async throws -> [ScenarioOutcome] {
        let semaphore = try AdvisorySemaphore("pglock-demo-renders", permits: permits)
        let keys = (0..<permits).map { semaphore.permitKey($0).int64Value ?? 0 }
        let holders: PostgresQuery = """
            SELECT count(*)::int FROM pg_locks
            WHERE locktype = 'advisory' AND objsubid = 1 AND granted
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND ((classid::int8 << 32) | objid::int8) = ANY(\(keys))
            """
        context.progress.step("\(name): \(workers) workers share \(permits) permits for \(format(duration)); holders counted in pg_locks throughout")
        let seen = Tally()
        let end = ContinuousClock.now + duration
        let giveUp = end + .seconds(30)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // The sampler: from its own session, as an operator would look.
                while ContinuousClock.now < end || seen.done.load(ordering: .relaxed) == 0 && ContinuousClock.now < giveUp {
                    let count = try await context.idempotentQuery(holders).rows[0].decode(Int.self)
                    seen.mostSampled.withLock { $0 = max($0, count) }
                }
            }
            for _ in 0..<workers {
                group.addTask {
                    while ContinuousClock.now < end || seen.done.load(ordering: .relaxed) == 0 && ContinuousClock.now < giveUp {
                        try await context.transaction { tx in
                            try await tx.semaphorePermit(semaphore)
                            let inside = try await tx.query(holders).rows[0].decode(Int.self)
                            seen.mostInside.withLock { $0 = max($0, inside) }
                            try await tx.query("SELECT pg_sleep(0.002)")
                        }
                        seen.done.add(1, ordering: .relaxed)
                    }
                }
            }
            try await group.waitForAll()
        }
        let (done, sampled, inside) = (seen.done.load(ordering: .relaxed), seen.mostSampled.withLock { $0 }, seen.mostInside.withLock { $0 })
        let detail = "\(done) transactions; at most \(max(sampled, inside)) holders of \(permits) permits (\(sampled) sampled from outside, \(inside) seen from inside)"
        context.progress.done(detail)
        return [
            outcome("never more than \(permits) holders", passed: done > 0 && sampled <= permits && inside <= permits && inside >= 1, detail: detail)
                .rate(done, per: duration, unit: "tx/s"),
        ]
    }

    /// What the workers and the sampler saw.
    private final class Tally: Sendable {
        let done = Atomic<Int>(0)
        let mostSampled = Mutex(0)
        let mostInside = Mutex(0)
    }
}
