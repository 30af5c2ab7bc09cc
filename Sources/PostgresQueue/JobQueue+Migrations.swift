import Logging
import PostgresLocks
import PostgresNIO

extension JobQueue {
    /// One schema change, applied once, in order.
    struct Migration: Sendable {
        var version: Int32
        var statements: @Sendable (JobQueue) -> [PostgresQuery]
    }

    /// The schema's history. Append only: never edit a migration that has shipped.
    static let migrations: [Migration] = [
        Migration(version: 1) { queue in
            let jobs = queue.jobsTable
            return [
                """
                CREATE TABLE \(identifier: jobs) (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    queue text NOT NULL,
                    kind text NOT NULL,
                    payload jsonb NOT NULL DEFAULT '{}',
                    priority smallint NOT NULL DEFAULT 0,
                    run_at timestamptz NOT NULL DEFAULT now(),
                    state text NOT NULL DEFAULT 'available'
                        CHECK (state IN ('available', 'running', 'completed', 'dead', 'cancelled')),
                    attempt int NOT NULL DEFAULT 0,
                    max_attempts int NOT NULL DEFAULT 20 CHECK (max_attempts >= 1),
                    lease_owner text,
                    lease_token uuid,
                    lease_expires_at timestamptz,
                    last_error text,
                    unique_key text,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    attempted_at timestamptz,
                    finished_at timestamptz
                ) WITH (fillfactor = 80)
                """,
                // The claim walks only available rows, in claim order.
                "CREATE INDEX jobs_available ON \(identifier: jobs) (queue, priority, run_at, id) WHERE state = 'available'",
                // The reaper finds expired leases without scanning finished jobs.
                "CREATE INDEX jobs_running_lease ON \(identifier: jobs) (lease_expires_at) WHERE state = 'running'",
                // A unique key blocks a second live job with the same key in the same queue.
                "CREATE UNIQUE INDEX jobs_unique_key ON \(identifier: jobs) (queue, unique_key) WHERE unique_key IS NOT NULL AND state IN ('available', 'running')",
                // Pruning finds old finished jobs.
                "CREATE INDEX jobs_finished ON \(identifier: jobs) (finished_at) WHERE state IN ('completed', 'dead', 'cancelled')",
                // Autovacuum early and often: every claim and completion leaves a dead tuple.
                "ALTER TABLE \(identifier: jobs) SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02)",
            ]
        },
    ]

    /// The newest schema version this library knows.
    public static var schemaVersion: Int32 { migrations.last!.version }

    /// Creates or upgrades the queue's tables: idempotent, and safe when several instances
    /// start at once (they serialize on an advisory lock; each migration commits with its
    /// version row, so a failed one leaves nothing half-applied).
    ///
    /// - Returns: the versions applied by this call (empty when already current).
    @discardableResult
    public func migrate(on client: PostgresClient, logger: Logger) async throws -> [Int32] {
        try await client.withCheckedTransaction(logger: logger) { tx in
            try await tx.advisoryLock(.hashed("pglocks.queue.migrate:\(schema.name)"))
            try await tx.query("CREATE SCHEMA IF NOT EXISTS \(identifier: schema)")
            try await tx.query("""
                CREATE TABLE IF NOT EXISTS \(identifier: migrationsTable) (
                    version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now()
                )
                """)
            let applied = Set(try await tx.query("SELECT version FROM \(identifier: migrationsTable)").rows.map { try $0.decode(Int32.self) })
            if let newest = applied.max(), newest > Self.schemaVersion {
                throw PostgresLocksError(
                    code: .unsupportedEnvironment,
                    message: "the queue schema \(schema.name) is at version \(newest), newer than this library's \(Self.schemaVersion): upgrade the library"
                )
            }
            var done: [Int32] = []
            for migration in Self.migrations where !applied.contains(migration.version) {
                for statement in migration.statements(self) { try await tx.query(statement) }
                try await tx.query("INSERT INTO \(identifier: migrationsTable) (version) VALUES (\(migration.version))")
                done.append(migration.version)
            }
            if !done.isEmpty { logger.info("queue schema migrated", metadata: ["schema": "\(schema.name)", "versions": "\(done)"]) }
            return done
        }
    }
}
