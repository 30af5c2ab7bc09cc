import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO

/// The classic race: concurrent writers that compute `MAX(version) + 1` per tenant
/// and insert it. Without a lock, two writers read the same maximum and store the same version;
/// with an advisory transaction lock on the tenant, taken by an earlier statement than the
/// `MAX`, every tenant's versions are exactly 1…n; and the same with ``GaplessCounter``'s
/// default strategy (one counter row per tenant). Each insert is a retrying transaction that
/// survives lost connections without ever storing a row twice
/// (``RetryPolicy/resolvingCommitOutcome``), so the checks hold while backends are terminated.
struct VersionRaceScenario: DemoScenario {
    var name: String { "version race" }
    var tenants = 4
    var writers = 16
    var insertsPerWriter = 40

    /// The advisory-lock namespace of the demo (the int4 pair form: namespace, tenant).
    static let lockNamespace: Int32 = 0x5047_4C4B // "PGLK"

    func run(context: DemoContext) async throws -> [ScenarioOutcome] {
        let table = try QualifiedName("pglock_demo_versions")
        let logger = context.logger
        let counter = try GaplessCounter(table: "pglock_demo_version_counters")
        return try await context.withScratchTables([table, counter.table]) { tx in
            try await tx.query("""
                CREATE TABLE \(identifier: table) (
                    id bigserial PRIMARY KEY,
                    mode text NOT NULL,
                    tenant int NOT NULL,
                    version int NOT NULL
                )
                """)
            try await tx.query("CREATE INDEX ON \(identifier: table) (mode, tenant, version)")
        } run: {
            try await context.idempotent { try await counter.migrate(on: context.client, logger: logger) }

            var outcomes: [ScenarioOutcome] = []
            for mode in Mode.allCases {
                context.progress.step("\(name): \(writers) writers × \(insertsPerWriter) inserts over \(tenants) tenants, \(mode.description)")
                let started = ContinuousClock.now
                _ = try await concurrently(writers) { writer in
                    for index in 0..<insertsPerWriter {
                        let tenant = (writer + index) % tenants
                        try await insertNextVersion(context: context, table: table, mode: mode, counter: counter, tenant: tenant)
                    }
                }
                let elapsed = ContinuousClock.now - started
                let total = writers * insertsPerWriter

                let rows = try await context.idempotentQuery("""
                    SELECT count(*)::int8, (count(*) - count(DISTINCT (tenant, version)))::int8
                    FROM \(identifier: table) WHERE mode = \(mode.rawValue)
                    """)
                let (count, duplicates) = try rows.rows[0].decode((Int64, Int64).self)
                // Per tenant: numbers missing from 1…max (a gap) once duplicates are set aside.
                let gapRows = try await context.idempotentQuery("""
                    SELECT COALESCE(sum(max_version - distinct_versions), 0)::int8
                    FROM (SELECT tenant, max(version) AS max_version, count(DISTINCT version) AS distinct_versions
                          FROM \(identifier: table) WHERE mode = \(mode.rawValue) GROUP BY tenant) per_tenant
                    """)
                let gaps = try gapRows.rows[0].decode(Int64.self)
                let detail = "\(count)/\(total) rows, \(duplicates) duplicate versions, \(gaps) gaps"
                let row = mode == .naive
                    ? outcome(duplicates > 0 ? "no lock: MAX+1 race produces duplicates" : "no lock: race not reproduced this run", passed: nil, detail: detail)
                    : outcome("\(mode.rawValue): versions unique and gapless", passed: duplicates == 0 && gaps == 0 && count == Int64(total), detail: detail)
                outcomes.append(row.rate(total, per: elapsed, unit: "tx/s"))
                context.progress.done(detail)
            }
            return outcomes
        }
    }

    enum Mode: String, CaseIterable, CustomStringConvertible {
        case naive
        case advisoryLock = "advisory lock"
        case gaplessCounter = "gapless counter"

        var description: String {
            switch self {
            case .naive: return "no lock"
            case .advisoryLock: return "with an advisory lock per tenant"
            case .gaplessCounter: return "with GaplessCounter (counter row per tenant)"
            }
        }
    }

    /// One writer's insert, in a transaction re-run after a lost connection (nothing was
    /// committed, or a `COMMIT` lost in flight was found aborted), so each call stores exactly one row.
    private func insertNextVersion(context: DemoContext, table: QualifiedName, mode: Mode, counter: GaplessCounter, tenant: Int) async throws {
        try await context.transaction { tx in
            let next: Int64
            switch mode {
            case .naive, .advisoryLock:
                if mode == .advisoryLock {
                    // The lock is its own statement: a READ COMMITTED statement's snapshot is
                    // taken when it starts, so the MAX below must start after the lock is granted.
                    try await tx.advisoryLock(.pair(namespace: Self.lockNamespace, id: Int32(tenant)))
                }
                next = try await tx.query("""
                    SELECT COALESCE(MAX(version), 0) + 1 FROM \(identifier: table) WHERE mode = \(mode.rawValue) AND tenant = \(tenant)
                    """).rows[0].decode(Int64.self)
            case .gaplessCounter:
                next = try await counter.next(scope: "tenant-\(tenant)", in: tx)
            }
            try await tx.query("""
                INSERT INTO \(identifier: table) (mode, tenant, version) VALUES (\(mode.rawValue), \(tenant), \(next))
                """)
        }
    }
}
