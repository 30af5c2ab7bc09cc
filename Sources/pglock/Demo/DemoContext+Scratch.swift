import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO
import PostgresQueue

extension DemoContext {
    /// The demo's logger for services whose warnings are expected in a scenario (killed
    /// leaders, claims a lost connection broke): errors only, unless a more verbose level
    /// was asked for.
    var quietLogger: Logger {
        var quiet = logger
        if quiet.logLevel == .warning { quiet.logLevel = .error }
        return quiet
    }

    /// Runs `body` on fresh `tables`: dropped first, then `create` runs in the same
    /// transaction; dropped again afterwards unless the demo keeps its tables.
    func withScratchTables<Result>(
        _ tables: [QualifiedName],
        isolation: isolated (any Actor)? = #isolation,
        create: (Transaction) async throws -> Void,
        run body: () async throws -> Result
    ) async throws -> Result {
        try await idempotentTransaction { tx in
            for table in tables { try await tx.query("DROP TABLE IF EXISTS \(identifier: table)") }
            try await create(tx)
        }
        let result = try await body()
        if !keepTables {
            try await idempotentTransaction { tx in
                for table in tables { try await tx.query("DROP TABLE IF EXISTS \(identifier: table)") }
            }
        }
        return result
    }

    /// Runs `body` with a job queue in a fresh `schema` (dropped first, then migrated),
    /// dropped again afterwards unless the demo keeps its tables.
    func withScratchQueue<Result>(
        schema: String,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (JobQueue) async throws -> Result
    ) async throws -> Result {
        let drop: PostgresQuery = "DROP SCHEMA IF EXISTS \(identifier: try SQLIdentifier(schema)) CASCADE"
        try await idempotentQuery(drop)
        let queue = try JobQueue(schema: schema)
        try await idempotent { _ = try await queue.migrate(on: client, logger: logger) }
        let result = try await body(queue)
        if !keepTables { try await idempotentQuery(drop) }
        return result
    }
}

extension DemoScenario {
    /// A report row of this scenario.
    func outcome(_ check: String, passed: Bool?, detail: String) -> ScenarioOutcome {
        ScenarioOutcome(scenario: name, check: check, passed: passed, detail: detail)
    }
}
