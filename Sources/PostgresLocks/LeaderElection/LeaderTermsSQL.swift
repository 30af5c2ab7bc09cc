import PostgresNIO

/// The SQL of a leader election's terms table: one row per election holding the current term
/// (the fencing token) and who holds it.
///
/// ```sql
/// CREATE TABLE IF NOT EXISTS pglocks_leader_terms (
///     election   text        PRIMARY KEY,
///     term       bigint      NOT NULL CHECK (term > 0),
///     holder     text        NOT NULL,
///     updated_at timestamptz NOT NULL DEFAULT now()
/// )
/// ```
///
/// The table name is a validated ``QualifiedName``; every value is a bound parameter.
enum LeaderTermsSQL {
    /// Whether the table exists already (the name is bound as text and parsed by the server).
    static func exists(_ table: QualifiedName) -> PostgresQuery {
        "SELECT to_regclass(\(table.quoted)) IS NOT NULL"
    }

    /// The advisory lock that serializes concurrent creations of the table: two sessions
    /// running `CREATE TABLE IF NOT EXISTS` at once can both pass the existence check, and
    /// the loser fails on the catalog's unique index (23505 on `pg_type`, or 42P07).
    static func creationLock(_ table: QualifiedName) -> LockKey {
        .hashed("postgres-locks:create-table:\(table.quoted)")
    }

    /// Creates the table if it is missing.
    static func create(_ table: QualifiedName) -> PostgresQuery {
        """
        CREATE TABLE IF NOT EXISTS \(identifier: table) (
            election text PRIMARY KEY,
            term bigint NOT NULL CHECK (term > 0),
            holder text NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    }

    /// Starts a new term for `election` held by `holder` and returns its number: 1 for the
    /// first leader, else the stored term plus one. Waits for transactions that hold the row
    /// `FOR SHARE` (fenced writes of the previous leader) to finish first.
    static func bumpTerm(_ table: QualifiedName, election: String, holder: String) -> PostgresQuery {
        """
        INSERT INTO \(identifier: table) AS terms (election, term, holder) VALUES (\(election), 1, \(holder))
        ON CONFLICT (election) DO UPDATE SET term = terms.term + 1, holder = EXCLUDED.holder, updated_at = now()
        RETURNING term
        """
    }

    /// The current term of `election`, share-locking its row until the transaction ends, so a
    /// new leader's term bump waits for the transaction that read it.
    static func currentTermForShare(_ table: QualifiedName, election: String) -> PostgresQuery {
        "SELECT term FROM \(identifier: table) WHERE election = \(election) FOR SHARE"
    }

    /// Every election's term, by name.
    static func list(_ table: QualifiedName) -> PostgresQuery {
        "SELECT election, term, holder, updated_at FROM \(identifier: table) ORDER BY election LIMIT 1000"
    }

    /// The holders of granted bigint-form advisory locks with the given `pg_locks` identities
    /// (in this database).
    static func lockHolders(classids: [Int64], objids: [Int64]) -> PostgresQuery {
        """
        SELECT l.classid::int8, l.objid::int8, l.pid, a.application_name
        FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND (l.classid::int8, l.objid::int8) IN (SELECT * FROM unnest(\(classids)::int8[], \(objids)::int8[]))
        """
    }
}
