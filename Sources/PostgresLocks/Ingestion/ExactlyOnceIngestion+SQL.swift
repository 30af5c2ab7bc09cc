import Logging
import PostgresNIO

extension ExactlyOnceIngestion {
    /// `INSERT … SELECT k FROM unnest($1) ON CONFLICT (key) DO NOTHING RETURNING key`, with the
    /// returned keys gathered into one array (one row to send and decode instead of one per key).
    ///
    /// `unnest` yields the array in order and `INSERT … SELECT` inserts rows as they come, so
    /// the keys are inserted (and any wait for another producer's uncommitted key happens) in
    /// the ascending order the client sorted them into. No `ORDER BY`: the client's order is
    /// byte order, which a server-side sort under the column's collation might not be.
    func insertStatement(_ keys: [Key]) -> PostgresQuery {
        """
        WITH inserted AS (\
        INSERT INTO \(identifier: table) (\(identifier: keyColumn)) \
        SELECT k FROM unnest(\(keys)::\(unescaped: Key.ingestionColumnType.arraySQLName)) AS u(k) \
        ON CONFLICT (\(identifier: keyColumn)) DO NOTHING RETURNING \(identifier: keyColumn)) \
        SELECT COALESCE(array_agg(\(identifier: keyColumn)), '{}') FROM inserted
        """
    }

    /// Creates the key table if it does not exist, in a transaction of its own, then checks it
    /// with ``verifyTable(in:)``.
    ///
    /// The table is `(<key> text COLLATE "C" PRIMARY KEY, ingested_at timestamptz NOT NULL
    /// DEFAULT now())` (or `uuid` keys). `COLLATE "C"` makes the index compare bytes, as the
    /// client does, and is the cheapest text comparison. Concurrent callers are serialized by
    /// a transaction-scoped advisory lock on the table's name, so two producers starting at
    /// once do not collide on the catalog.
    public func migrate(on client: PostgresClient, logger: Logger) async throws {
        try await client.withCheckedTransaction(logger: logger) { transaction in
            try await createTableIfNeeded(in: transaction)
        }
    }

    /// ``migrate(on:logger:)`` inside an open transaction.
    func createTableIfNeeded(in transaction: Transaction) async throws {
        let guardKey = LockKey.hashed("pglocks.ingestion.create-table:\(table.quoted)")
        try await transaction.query("SELECT pg_advisory_xact_lock(\(guardKey.int64Value!))")
        let keyType = Key.ingestionColumnType == .text ? "text COLLATE \"C\"" : Key.ingestionColumnType.sqlName
        try await transaction.query("""
            CREATE TABLE IF NOT EXISTS \(identifier: table) (
                \(identifier: keyColumn) \(unescaped: keyType) PRIMARY KEY,
                ingested_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        try await verifyTable(in: transaction)
    }

    /// Checks that the table can be used: it exists; the key column has the key's type
    /// (`text`/`varchar` for `String`, `uuid` for `UUID`) and, for text, a deterministic
    /// collation (so equal means byte-equal, as the client assumes); a unique index covers the
    /// key column alone (what `ON CONFLICT (key)` needs); and every other `NOT NULL` column has
    /// a default.
    ///
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` naming what is wrong.
    public func verifyTable(in transaction: Transaction) async throws {
        let rows = try await transaction.query("""
            SELECT a.atttypid::regtype::text,
                   COALESCE((SELECT c.collisdeterministic FROM pg_collation c WHERE c.oid = a.attcollation), true),
                   EXISTS (SELECT 1 FROM pg_index i
                           WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indisvalid AND i.indnkeyatts = 1
                             AND i.indkey[0] = a.attnum AND i.indpred IS NULL AND i.indexprs IS NULL),
                   COALESCE((SELECT string_agg(o.attname::text, ', ') FROM pg_attribute o
                             WHERE o.attrelid = a.attrelid AND o.attnum > 0 AND NOT o.attisdropped AND o.attnotnull
                               AND NOT o.atthasdef AND o.attidentity = '' AND o.attgenerated = '' AND o.attnum <> a.attnum), '')
            FROM pg_attribute a
            WHERE a.attrelid = to_regclass(\(table.quoted)) AND a.attname = \(keyColumn.name) AND NOT a.attisdropped
            """).rows
        guard let row = rows.first else {
            throw PostgresLocksError.invalidArgument("table \(table) does not exist or has no column \(keyColumn)")
        }
        let (type, deterministic, unique, missingDefaults) = try row.decode((String, Bool, Bool, String).self)
        let accepted: Set<String> = Key.ingestionColumnType == .text ? ["text", "character varying"] : ["uuid"]
        guard accepted.contains(type) else {
            throw PostgresLocksError.invalidArgument("column \(keyColumn) of \(table) is \(type); \(Key.self) keys need \(Key.ingestionColumnType)")
        }
        guard deterministic else {
            throw PostgresLocksError.invalidArgument("column \(keyColumn) of \(table) has a nondeterministic collation: keys that differ in bytes could be equal to the index, which the client's byte order does not know; use COLLATE \"C\"")
        }
        guard unique else {
            throw PostgresLocksError.invalidArgument("no valid unique index on \(table) covers \(keyColumn) alone (ON CONFLICT (\(keyColumn.name)) needs one): add PRIMARY KEY or UNIQUE")
        }
        guard missingDefaults.isEmpty else {
            throw PostgresLocksError.invalidArgument("columns \(missingDefaults) of \(table) are NOT NULL without a default, so a row with only the key cannot be inserted")
        }
    }
}
