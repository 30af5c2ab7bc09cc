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
        Migration(version: 2) { queue in
            let jobs = queue.jobsTable
            return [
                """
                ALTER TABLE \(identifier: jobs)
                    ADD COLUMN tags text[] NOT NULL DEFAULT '{}',
                    ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}',
                    ADD COLUMN output jsonb,
                    ADD COLUMN unique_states text[],
                    ADD COLUMN snoozes int NOT NULL DEFAULT 0
                """,
                // Uniqueness over the states each job names (a key may block while completed too).
                "UPDATE \(identifier: jobs) SET unique_states = '{available,running}' WHERE unique_key IS NOT NULL",
                "DROP INDEX \(identifier: queue.schema).jobs_unique_key",
                "CREATE UNIQUE INDEX jobs_unique_key ON \(identifier: jobs) (queue, unique_key) WHERE unique_key IS NOT NULL AND state = ANY(unique_states)",
                // One row per queue that was ever paused, resized or limited.
                """
                CREATE TABLE \(identifier: queue.queuesTable) (
                    name text PRIMARY KEY,
                    paused boolean NOT NULL DEFAULT false,
                    concurrency int CHECK (concurrency BETWEEN 1 AND 10000),
                    limited boolean NOT NULL DEFAULT false,
                    updated_at timestamptz NOT NULL DEFAULT now()
                )
                """,
                // Fleet-wide limits per queue and kind ('' is the queue as a whole).
                """
                CREATE TABLE \(identifier: queue.limitsTable) (
                    queue text NOT NULL,
                    kind text NOT NULL,
                    max_running int CHECK (max_running >= 1),
                    max_starts int CHECK (max_starts >= 1),
                    starts_period_ms bigint CHECK (starts_period_ms >= 1),
                    PRIMARY KEY (queue, kind),
                    CHECK ((max_starts IS NULL) = (starts_period_ms IS NULL)),
                    CHECK (max_running IS NOT NULL OR max_starts IS NOT NULL)
                )
                """,
                // When rate-limited jobs started (a sliding window; pruned by maintenance).
                "CREATE TABLE \(identifier: queue.startsTable) (queue text NOT NULL, kind text NOT NULL, started_at timestamptz NOT NULL)",
                "CREATE INDEX starts_window ON \(identifier: queue.startsTable) (queue, kind, started_at)",
                // Periodic schedules as the scheduler last saw them, and each tick enqueued.
                """
                CREATE TABLE \(identifier: queue.schedulesTable) (
                    name text PRIMARY KEY,
                    schedule text NOT NULL,
                    queue text NOT NULL,
                    kind text NOT NULL,
                    missed_ticks text NOT NULL,
                    last_tick timestamptz,
                    next_tick timestamptz,
                    last_job_id bigint,
                    term bigint,
                    updated_at timestamptz NOT NULL DEFAULT now()
                )
                """,
                """
                CREATE TABLE \(identifier: queue.ticksTable) (
                    schedule text NOT NULL,
                    tick timestamptz NOT NULL,
                    job_id bigint,
                    term bigint NOT NULL,
                    enqueued_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (schedule, tick)
                )
                """,
            ]
        },
        Migration(version: 3) { queue in
            let jobs = queue.jobsTable, completed = queue.completedTable
            return [
                // Completed jobs live apart from the claimable ones: completing deletes the row
                // from the jobs table and inserts it here, so claims and completions never walk
                // or rewrite finished history, even while an old snapshot keeps dead rows alive.
                "CREATE TABLE \(identifier: completed) (LIKE \(identifier: jobs) INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
                "ALTER TABLE \(identifier: completed) ADD PRIMARY KEY (id)",
                // Retention finds old completed jobs.
                "CREATE INDEX completed_jobs_finished ON \(identifier: completed) (finished_at)",
                """
                WITH moved AS (
                    DELETE FROM \(identifier: jobs)
                    WHERE state = 'completed' AND NOT (unique_key IS NOT NULL AND COALESCE('completed' = ANY(unique_states), false))
                    RETURNING *
                )
                INSERT INTO \(identifier: completed) SELECT * FROM moved
                """,
                // A lease token exists only while its job runs: the statements after a claim
                // match the token alone, never `state = 'running'` (see completeSQL).
                "UPDATE \(identifier: jobs) SET lease_token = NULL WHERE lease_token IS NOT NULL AND state <> 'running'",
                "ALTER TABLE \(identifier: jobs) ADD CONSTRAINT jobs_lease_only_while_running CHECK (lease_token IS NULL OR state = 'running')",
                // Every job in one relation, for readers. A migration that adds a column to the
                // jobs table adds it to the completed table too and replaces this view.
                "CREATE VIEW \(identifier: queue.allJobsView) AS SELECT * FROM \(identifier: jobs) UNION ALL SELECT * FROM \(identifier: completed)",
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
        try await migrate(on: client, upTo: Self.schemaVersion, logger: logger)
    }

    /// ``migrate(on:logger:)`` stopping at `version`: how tests build a schema as an older
    /// release left it, to upgrade it.
    @discardableResult
    package func migrate(on client: PostgresClient, upTo version: Int32, logger: Logger) async throws -> [Int32] {
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
            for migration in Self.migrations where !applied.contains(migration.version) && migration.version <= version {
                for statement in migration.statements(self) { try await tx.query(statement) }
                try await tx.query("INSERT INTO \(identifier: migrationsTable) (version) VALUES (\(migration.version))")
                done.append(migration.version)
            }
            if !done.isEmpty { logger.info("queue schema migrated", metadata: ["schema": "\(schema.name)", "versions": "\(done)"]) }
            return done
        }
    }
}
