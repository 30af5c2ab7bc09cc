import PostgresNIO

/// A row-locking clause for a `SELECT`: strength, waiting policy and `OF` tables,
/// rendered from validated parts only.
///
/// ```swift
/// let claim = try RowLock(.noKeyUpdate, of: ["jobs"], waiting: .skipLocked)
/// let rows = try await tx.query("SELECT id FROM jobs WHERE state = 'ready' ORDER BY id LIMIT 10 \(rowLock: claim)")
/// ```
public struct RowLock: Sendable, Hashable, CustomStringConvertible {
    /// How strongly the selected rows are locked.
    public enum Strength: String, Sendable, Hashable {
        /// `FOR UPDATE`: blocks every other lock on the row; for deletes and key changes.
        case update = "FOR UPDATE"
        /// `FOR NO KEY UPDATE`: for updates that keep the key; does not block `FOR KEY SHARE`
        /// (so inserts of rows referencing this one by foreign key go on). Right for queues.
        case noKeyUpdate = "FOR NO KEY UPDATE"
        /// `FOR SHARE`: readers that keep the row from changing; blocks updates.
        case share = "FOR SHARE"
        /// `FOR KEY SHARE`: keeps the key from changing or the row from being deleted only.
        case keyShare = "FOR KEY SHARE"
    }

    /// What happens when a selected row is locked by someone else.
    public enum Waiting: String, Sendable, Hashable {
        /// Wait for the lock (bounded by `lock_timeout`, see ``Transaction/setLockTimeout(_:)``).
        case wait = ""
        /// Fail at once with ``PostgresLocksError/Code/lockNotAvailable`` (55P03).
        case noWait = "NOWAIT"
        /// Leave locked rows out of the result.
        case skipLocked = "SKIP LOCKED"
    }

    /// The lock strength.
    public var strength: Strength
    /// The tables (or aliases) of the `FROM` list whose rows are locked; empty means all.
    public var tables: [SQLIdentifier]
    /// The waiting policy.
    public var waiting: Waiting

    /// A clause locking the rows of `tables` (all tables when empty).
    public init(_ strength: Strength = .update, of tables: [SQLIdentifier] = [], waiting: Waiting = .wait) {
        self.strength = strength
        self.tables = tables
        self.waiting = waiting
    }

    /// A clause locking the rows of the named tables or aliases, validated as identifiers.
    ///
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` for a name that is not a plain
    ///   identifier (`OF` takes unqualified names from the `FROM` list).
    public init(_ strength: Strength = .update, of tables: [String], waiting: Waiting = .wait) throws(PostgresLocksError) {
        var identifiers: [SQLIdentifier] = []
        for table in tables { identifiers.append(try SQLIdentifier(table)) }
        self.init(strength, of: identifiers, waiting: waiting)
    }

    /// The SQL text, for example `FOR NO KEY UPDATE OF "jobs" SKIP LOCKED`.
    public var sql: String {
        var text = strength.rawValue
        if !tables.isEmpty { text += " OF " + tables.map(\.quoted).joined(separator: ", ") }
        if waiting != .wait { text += " " + waiting.rawValue }
        return text
    }

    /// The SQL text.
    public var description: String { sql }
}

extension PostgresQuery.StringInterpolation {
    /// Inserts a row-locking clause: `"SELECT … FROM jobs … \(rowLock: claim)"`.
    public mutating func appendInterpolation(rowLock: RowLock) {
        appendInterpolation(unescaped: rowLock.sql)
    }
}
