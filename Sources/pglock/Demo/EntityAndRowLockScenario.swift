import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO

/// Per-entity serialization and row locks: read-then-write updates serialized per
/// account while accounts run in parallel; workers claiming rows with `SKIP LOCKED` get
/// disjoint rows; `NOWAIT` on a locked row fails at once with the typed error. The updates and
/// claims are retrying transactions (``RetryPolicy/resolvingCommitOutcome``): a lost connection
/// re-runs only what did not commit, so every increment and every claim counts once.
struct EntityAndRowLockScenario: DemoScenario {
    var name: String { "entity & row locks" }
    /// Accounts updated under their entity locks, by how many workers, each how many times;
    /// rows claimed with `SKIP LOCKED`.
    var accounts = 4, workers = 12, updatesPerWorker = 40
    var rows = 2_000

    func run(context: DemoContext) async throws -> [ScenarioOutcome] {
        let client = context.client, logger = context.logger
        let balances = try QualifiedName("pglock_demo_balances")
        let tasks = try QualifiedName("pglock_demo_tasks")
        let (accounts, updatesPerWorker, rows) = (self.accounts, self.updatesPerWorker, self.rows)
        return try await context.withScratchTables([balances, tasks]) { tx in
            try await tx.query("CREATE TABLE \(identifier: balances) (account int PRIMARY KEY, n int NOT NULL)")
            try await tx.query("INSERT INTO \(identifier: balances) SELECT g, 0 FROM generate_series(1, \(accounts)) g")
            try await tx.query("CREATE TABLE \(identifier: tasks) (id int PRIMARY KEY, claimed_by int, claims int NOT NULL DEFAULT 0)")
            try await tx.query("INSERT INTO \(identifier: tasks) (id) SELECT g FROM generate_series(1, \(rows)) g")
        } run: {
            context.progress.step("\(name): \(workers) workers × \(updatesPerWorker) read-then-write updates over \(accounts) accounts, a transaction lock per account")
            let started = ContinuousClock.now
            _ = try await concurrently(workers) { worker in
                for step in 0..<updatesPerWorker {
                    let account = Int32((worker + step) % accounts + 1)
                    // The account's lock and work, in a transaction re-run after a lost connection.
                    try await context.transaction { tx in
                        try await tx.advisoryLock(.pair(namespace: 0x5047_4C4B, id: account))
                        let n = try await tx.query("SELECT n FROM \(identifier: balances) WHERE account = \(account)").rows[0].decode(Int.self)
                        try await tx.query("UPDATE \(identifier: balances) SET n = \(n + 1) WHERE account = \(account)")
                    }
                }
            }
            let entityElapsed = ContinuousClock.now - started
            let total = try await context.idempotentQuery("SELECT sum(n)::int8 FROM \(identifier: balances)").rows[0].decode(Int64.self)
            let expected = Int64(workers * updatesPerWorker)
            let entityDetail = "\(total) of \(expected) increments kept (read, then write, no row lock)"
            context.progress.done(entityDetail)

            context.progress.step("\(name): \(workers) workers claim \(rows) rows in batches of 10 with FOR NO KEY UPDATE SKIP LOCKED")
            let claim = try RowLock(.noKeyUpdate, of: [tasks.name.name], waiting: .skipLocked)
            let claimStarted = ContinuousClock.now
            _ = try await concurrently(workers) { worker in
                while true {
                    let count = try await context.transaction { tx in
                        let ids = try await tx.query("SELECT id FROM \(identifier: tasks) WHERE claimed_by IS NULL ORDER BY id LIMIT 10 \(rowLock: claim)").rows.map { try $0.decode(Int32.self) }
                        if !ids.isEmpty {
                            try await tx.query("UPDATE \(identifier: tasks) SET claimed_by = \(worker), claims = claims + 1 WHERE id = ANY(\(ids))")
                        }
                        return ids.count
                    }
                    if count == 0 { return }
                }
            }
            let claimElapsed = ContinuousClock.now - claimStarted
            let (badClaims, claimers) = try await context.idempotentQuery(
                "SELECT count(*) FILTER (WHERE claims <> 1)::int8, count(DISTINCT claimed_by)::int8 FROM \(identifier: tasks)"
            ).rows[0].decode((Int64, Int64).self)

            // NOWAIT: a second transaction asking for a row the first one holds fails at once. The
            // answer counts only if the first transaction then commits (its session, and so its row
            // lock, lived throughout); a lost connection on either side runs the pair again.
            let noWaitCode: String = try await context.idempotentTransaction { tx in
                try await tx.query("SELECT id FROM \(identifier: tasks) WHERE id = 1 \(rowLock: RowLock(.update))")
                do {
                    try await client.withCheckedTransaction(logger: logger) { other in
                        try await other.query("SELECT id FROM \(identifier: tasks) WHERE id = 1 \(rowLock: RowLock(.update, waiting: .noWait))")
                    }
                    return "granted"
                } catch let error as PostgresLocksError where !DemoContext.isConnectionFault(error) {
                    return error.code.name
                }
            }
            let rowDetail = "\(rows) rows, \(badClaims) claimed twice or never, \(claimers) workers shared them; NOWAIT on a held row: \(noWaitCode)"
            context.progress.done(rowDetail)
            return [
                outcome("per-entity serialization: no lost update", passed: total == expected, detail: entityDetail)
                    .rate(expected, per: entityElapsed, unit: "tx/s"),
                outcome(
                    "SKIP LOCKED disjoint claims; NOWAIT typed error",
                    passed: badClaims == 0 && noWaitCode == PostgresLocksError.Code.lockNotAvailable.name, detail: rowDetail
                ).rate(rows, per: claimElapsed, unit: "rows/s"),
            ]
        }
    }
}
