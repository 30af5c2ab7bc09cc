import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO
import Synchronization

/// A singleton job: ten instances keep trying to run the same job; the job's runs,
/// recorded in the database with their start and end times, never overlap.
///
/// A session lock excludes only while its session lives. When the server ends the holder's
/// session (a backend terminated, a restart) the lock is free at once, and the old holder
/// learns it a moment later (its connection closes; `runSingleton` cancels the body and throws
/// `lockLost`). For those milliseconds two instances can really be at work. So the job's
/// writes are **fenced**: a run takes the next token from a fence row when it starts, and its
/// final write commits only while its token is still the newest (checked under a row lock in
/// the same transaction). The checks, in the database: completed runs never overlap; every run
/// left unfinished is explained by a lost lock; a run is never fenced while its lock lived.
struct SingletonScenario: DemoScenario {
    var needsServerSession: Bool { true }
    var name: String { "singleton job" }
    var instances = 10
    var duration: Duration = .milliseconds(1500)
    /// How long a run refused by the fence waits for its lock loss to be noticed before it
    /// counts as refused with its lock still held (a broken exclusion).
    var fencedGrace: Duration = .seconds(3)

    static let job = "pglock-demo-report"

    /// What the instances saw.
    struct Tally: Sendable {
        var ran = 0
        var skipped = 0
        /// Runs cancelled because their lock was lost (`lockLost`).
        var lost = 0
        /// Runs refused by the fence while their lock session still lived: must stay 0.
        var fencedWhileHeld = 0
        /// Attempts that could not reach the server (the lock was never taken).
        var unreachable = 0

        static func + (lhs: Tally, rhs: Tally) -> Tally {
            Tally(ran: lhs.ran + rhs.ran, skipped: lhs.skipped + rhs.skipped, lost: lhs.lost + rhs.lost,
                  fencedWhileHeld: lhs.fencedWhileHeld + rhs.fencedWhileHeld, unreachable: lhs.unreachable + rhs.unreachable)
        }
    }

    func run(context: DemoContext) async throws -> [ScenarioOutcome] {
        let table = try QualifiedName("pglock_demo_singleton_runs")
        let fence = try QualifiedName("pglock_demo_singleton_fence")
        let client = context.client
        return try await context.withScratchTables([table, fence]) { tx in
            try await tx.query("CREATE TABLE \(identifier: table) (id bigserial PRIMARY KEY, instance int NOT NULL, token bigint NOT NULL, started timestamptz NOT NULL, ended timestamptz)")
            try await tx.query("CREATE TABLE \(identifier: fence) (job text PRIMARY KEY, token bigint NOT NULL)")
            try await tx.query("INSERT INTO \(identifier: fence) VALUES (\(Self.job), 0)")
        } run: {
            context.progress.step("\(name): \(instances) instances calling runSingleton(\"\(Self.job)\") for \(format(duration))")
            let end = ContinuousClock.now + duration
            let fencedGrace = self.fencedGrace
            let tally = try await withThrowingTaskGroup(of: Tally.self) { group in
                for instance in 0..<instances {
                    group.addTask {
                        var tally = Tally()
                        // An instance that got no answer by the end (the server was restarting all
                        // along) goes on until its first run or skip, for at most 30 s more.
                        while ContinuousClock.now < end || (tally.ran + tally.skipped == 0 && ContinuousClock.now < end + .seconds(30)) {
                            do {
                                try await client.runSingleton(Self.job, logger: context.logger) {
                                    try await Self.runJob(instance: instance, table: table, fence: fence, context: context, fencedGrace: fencedGrace)
                                }
                                tally.ran += 1
                            } catch let error as PostgresLocksError where error.code == .lockTimeout {
                                tally.skipped += 1
                                // A scheduler would try again on its next tick; a short pause stands for it.
                                try await Task.sleep(for: .milliseconds(5))
                            } catch let error as PostgresLocksError where error.code == .lockLost {
                                tally.lost += 1
                                context.faults.lockLost()
                            } catch let error as PostgresLocksError where error.code == .fenced {
                                tally.fencedWhileHeld += 1
                            } catch where DemoContext.isConnectionFault(error) {
                                tally.unreachable += 1
                                context.faults.connectionLost()
                                try await Task.sleep(for: .milliseconds(10))
                            }
                        }
                        return tally
                    }
                }
                return try await group.reduce(Tally(), +)
            }
            let (overlaps, unfinished, runs) = try await context.idempotentTransaction { tx in
                let overlaps = try await tx.query("""
                    SELECT count(*)::int8 FROM \(identifier: table) a JOIN \(identifier: table) b
                      ON a.id < b.id AND tstzrange(a.started, a.ended) && tstzrange(b.started, b.ended)
                    WHERE a.ended IS NOT NULL AND b.ended IS NOT NULL
                    """).rows[0].decode(Int64.self)
                let (unfinished, runs) = try await tx.query(
                    "SELECT count(*) FILTER (WHERE ended IS NULL)::int8, count(*)::int8 FROM \(identifier: table)"
                ).rows[0].decode((Int64, Int64).self)
                return (overlaps, unfinished, runs)
            }
            var detail = "\(tally.ran) runs, \(tally.skipped) skips, \(overlaps) overlapping completed runs"
            if tally.lost + tally.fencedWhileHeld + Int(unfinished) > 0 {
                detail += "; runs that lost their lock (cancelled): \(tally.lost), recorded runs left unfinished (end fenced off): \(unfinished) of \(runs)"
            }
            if tally.fencedWhileHeld > 0 { detail += "; runs fenced off while their lock looked held: \(tally.fencedWhileHeld)" }
            context.progress.done(detail)
            return [
                outcome(
                    "one instance at a time (fenced), others skip",
                    passed: overlaps == 0 && unfinished <= Int64(tally.lost) && tally.fencedWhileHeld == 0 && tally.ran > 0 && tally.skipped > 0,
                    detail: detail
                ).rate(tally.ran, per: duration, unit: "runs/s"),
            ]
        }
    }

    /// One run of the job while holding the singleton lock: take the next fencing token and
    /// record the start; do the work; record the end only if the token is still the newest.
    private static func runJob(instance: Int, table: QualifiedName, fence: QualifiedName, context: DemoContext, fencedGrace: Duration) async throws {
        // The start: the token is taken under the fence row's lock, so a later start's
        // timestamp comes after every earlier run's fenced end (or fences that end off).
        let (id, token) = try await context.transaction { tx in
            let token = try await tx.query("UPDATE \(identifier: fence) SET token = token + 1 WHERE job = \(Self.job) RETURNING token").rows[0].decode(Int64.self)
            let id = try await tx.query("""
                INSERT INTO \(identifier: table) (instance, token, started) VALUES (\(instance), \(token), clock_timestamp()) RETURNING id
                """).rows[0].decode(Int64.self)
            return (id, token)
        }
        // The job's work (a little real database work) and its end, fenced by the token.
        let current = try await context.transaction { tx in
            try await tx.query("SELECT count(*) FROM generate_series(1, 20000)")
            let current = try await tx.query("SELECT token FROM \(identifier: fence) WHERE job = \(Self.job) FOR SHARE").rows[0].decode(Int64.self)
            if current == token {
                try await tx.query("UPDATE \(identifier: table) SET ended = clock_timestamp() WHERE id = \(id)")
            }
            return current
        }
        guard current == token else {
            // Another run started: this one's lock is gone. Its loss is noticed within moments
            // (the body is cancelled and lockLost thrown); if not, the lock did not exclude.
            try await Task.sleep(for: fencedGrace)
            throw PostgresLocksError(code: .fenced, message: "run \(id) (token \(token)) was fenced off by token \(current) while its singleton lock still looked held")
        }
    }
}
