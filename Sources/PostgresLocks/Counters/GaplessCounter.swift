import Logging
import PostgresNIO
import Tracing

/// Hands out numbers per scope (tenant, document, invoice series) that run 1, 2, 3, … with no
/// gap and no duplicate, inside the caller's transaction: a rollback consumes nothing.
///
/// ```swift
/// let invoices = try GaplessCounter(table: "invoice_numbers")
/// try await invoices.migrate(on: client, logger: logger)
/// try await client.withCheckedTransaction(logger: logger) { tx in
///     let number = try await invoices.next(scope: "acme/2026", in: tx)
///     try await tx.query("INSERT INTO invoices (series, number, total) VALUES ('acme/2026', \(number), \(total))")
/// }
/// ```
///
/// A sequence cannot do this (`nextval` is never rolled back). Every strategy makes concurrent
/// callers on one scope wait for each other until the earlier transaction ends, so hold the
/// transaction short. Numbers are in commit order per scope; different scopes never wait on
/// each other (except for ``Strategy/uniqueIndexRetry`` under heavy contention, which only retries).
///
/// The counter writes to its own table (see ``Strategy`` for its shape); table and column names
/// are validated and quoted, scopes are bound values.
public struct GaplessCounter: Sendable {
    /// How numbers are allocated. All three are safe; they differ in speed and in what they
    /// store.
    public enum Strategy: String, Sendable, CaseIterable, Codable {
        /// One row per scope holding the last number: `INSERT … ON CONFLICT (scope) DO UPDATE SET
        /// value = value + 1 RETURNING value`. The row lock serializes callers; one round trip.
        /// The table is `(scope text PRIMARY KEY, value bigint)`. The fastest: the default.
        case counterRow = "counter-row"
        /// A transaction advisory lock on the scope taken by **an earlier statement**,
        /// then `INSERT … SELECT MAX(n) + 1` (two round trips). The table keeps one row per
        /// number: `(scope text, number bigint, PRIMARY KEY (scope, number))`.
        case advisoryLock = "advisory-lock"
        /// `INSERT … SELECT MAX(n) + 1 … ON CONFLICT DO NOTHING` guarded by the unique
        /// index, retried when a concurrent caller took the number. No lock of its own; the same
        /// table shape as ``advisoryLock``.
        case uniqueIndexRetry = "unique-index-retry"
    }

    /// The table the counter writes to.
    public let table: QualifiedName
    /// The column holding the scope.
    public let scopeColumn: SQLIdentifier
    /// The column holding the number (``Strategy/counterRow``: the last number handed out).
    public let numberColumn: SQLIdentifier
    /// The allocation strategy.
    public let strategy: Strategy
    /// How many times ``Strategy/uniqueIndexRetry`` tries before giving up.
    public let maximumAttempts: Int

    /// The default strategy: ``Strategy/counterRow``, the fastest in `pglock bench counter`.
    public static let defaultStrategy = Strategy.counterRow

    /// The text of ``Strategy/counterRow``'s one statement, built once.
    private let counterRowSQL: String

    /// A counter on `table` (optionally `schema`-qualified).
    ///
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` for a name that is not a plain
    ///   identifier, or a `maximumAttempts` below 1.
    public init(
        table: String,
        schema: String? = nil,
        scopeColumn: String = "scope",
        numberColumn: String? = nil,
        strategy: Strategy = GaplessCounter.defaultStrategy,
        maximumAttempts: Int = 100
    ) throws(PostgresLocksError) {
        guard maximumAttempts >= 1 else {
            throw .invalidArgument("maximumAttempts must be at least 1; found \(maximumAttempts)")
        }
        self.table = try QualifiedName(schema: schema, table)
        self.scopeColumn = try SQLIdentifier(scopeColumn)
        self.numberColumn = try SQLIdentifier(numberColumn ?? (strategy == .counterRow ? "value" : "number"))
        self.strategy = strategy
        self.maximumAttempts = maximumAttempts
        self.counterRowSQL = Self.counterRowSQL(table: self.table, scopeColumn: self.scopeColumn, numberColumn: self.numberColumn)
    }

    /// The next number of `scope`, allocated in `transaction`. It becomes permanent when the
    /// transaction commits and is given again if it rolls back.
    ///
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` for an empty scope;
    ///   ``PostgresLocksError/Code/serializationFailure`` if ``Strategy/uniqueIndexRetry`` lost
    ///   every attempt; server errors such as `deadlock` (when the caller takes other locks in
    ///   another order) as ``PostgresLocksError``.
    public func next(scope: String, in transaction: Transaction) async throws -> Int64 {
        guard !scope.isEmpty else { throw PostgresLocksError.invalidArgument("the counter scope is empty") }
        return try await LibrarySpan.with("pglocks.gapless_number") { span in
            span.attributes["pglocks.counter.table"] = "\(table)"
            span.attributes["pglocks.counter.scope"] = scope
            span.attributes["pglocks.counter.strategy"] = strategy.rawValue
            let number = try await allocate(scope: scope, in: transaction)
            span.attributes["pglocks.counter.number"] = number
            return number
        }
    }

    /// The number, by the counter's strategy.
    private func allocate(scope: String, in transaction: Transaction) async throws -> Int64 {
        switch strategy {
        case .counterRow:
            return try await transaction.queryPrepared(counterRowStatement(scope: scope))[0].int64FromText()
        case .advisoryLock:
            // The lock must come from an earlier statement: under READ COMMITTED a statement's
            // snapshot is taken when it starts, before a lock inside it is granted, so the MAX
            // would be read from before the previous holder committed.
            try await transaction.queryPrepared(AdvisoryLockSQL.call("pg_advisory_xact_lock", key: lockKey(scope: scope)))
            return try await transaction.queryPrepared(maxPlusOneStatement(scope: scope, onConflictDoNothing: false))[0].int64FromText()
        case .uniqueIndexRetry:
            // ON CONFLICT DO NOTHING waits for a concurrent insert of the same number; if that
            // one commits, nothing is inserted (no row back) and the next statement, with a new
            // snapshot, sees its number. No 23505, so no savepoint round trips.
            for _ in 0..<maximumAttempts {
                let rows = try await transaction.queryPrepared(maxPlusOneStatement(scope: scope, onConflictDoNothing: true))
                if let row = rows.first { return try row.int64FromText() }
            }
            throw PostgresLocksError(
                code: .serializationFailure,
                message: "no free number for scope after \(maximumAttempts) attempts: other transactions kept taking it"
            )
        }
    }

    /// The advisory key guarding `scope` (strategy ``Strategy/advisoryLock``): the default
    /// string hash of `"<table>:<scope>"` (``LockKey/HashScheme/md5FirstEightBytes``), so a
    /// service in another language that hashes the same text the same way takes the same lock.
    public func lockKey(scope: String) -> LockKey {
        .hashed("\(table.unquotedText):\(scope)")
    }

    /// Creates the counter's table if it does not exist (safe when several instances start
    /// at once).
    public func migrate(on client: PostgresClient, logger: Logger) async throws {
        try await client.withCheckedTransaction(logger: logger) { tx in
            // Concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog (23505 on
            // pg_type): serialize creators on a key derived from the table name.
            try await tx.query(AdvisoryLockSQL.call("pg_advisory_xact_lock", key: .hashed("pglocks.create:\(table.unquotedText)")).query)
            try await tx.query(createTableStatement())
        }
    }

    func createTableStatement() -> PostgresQuery {
        switch strategy {
        case .counterRow:
            return "CREATE TABLE IF NOT EXISTS \(identifier: table) (\(identifier: scopeColumn) text PRIMARY KEY, \(identifier: numberColumn) bigint NOT NULL)"
        case .advisoryLock, .uniqueIndexRetry:
            return "CREATE TABLE IF NOT EXISTS \(identifier: table) (\(identifier: scopeColumn) text NOT NULL, \(identifier: numberColumn) bigint NOT NULL, PRIMARY KEY (\(identifier: scopeColumn), \(identifier: numberColumn)))"
        }
    }

    /// The counter's statements: fixed texts and validated, quoted identifiers, with the scope
    /// bound; prepared once per connection (``StatementPreparation``); the number comes back as
    /// text (see ``PreparedSQL``).
    func counterRowStatement(scope: String) -> PreparedSQL {
        PreparedSQL(counterRowSQL, [.text(scope)])
    }

    /// The counter-row statement's text, from the validated, quoted names.
    private static func counterRowSQL(table: QualifiedName, scopeColumn: SQLIdentifier, numberColumn: SQLIdentifier) -> String {
        let table = table.quoted, scopeColumn = scopeColumn.quoted, numberColumn = numberColumn.quoted
        return """
            INSERT INTO \(table) AS c (\(scopeColumn), \(numberColumn)) VALUES ($1, 1)
            ON CONFLICT (\(scopeColumn)) DO UPDATE SET \(numberColumn) = c.\(numberColumn) + 1
            RETURNING \(numberColumn)::text
            """
    }

    /// The statements ``next(scope:in:)`` sends for this counter's strategy, in order, as plain
    /// SQL texts: the scope written as `scopeSQL` (an SQL expression for the scope's text) and
    /// the advisory key computed by the server. For tools that run the same statements outside
    /// the library (`pglock bench counter` hands them to pgbench); `scopeSQL` is inserted as it is.
    package func statementTexts(scopeSQL: String) -> [String] {
        func bound(_ statement: PreparedSQL, _ value: String) -> String {
            statement.sql.replacingOccurrences(of: "$1", with: value)
        }
        switch strategy {
        case .counterRow:
            return [bound(counterRowStatement(scope: ""), scopeSQL)]
        case .advisoryLock:
            // The key's text is "<table>:<scope>" (see lockKey(scope:)); ':' is written chr(58)
            // so that tools reading `:name` as a variable (psql, pgbench) leave it alone.
            let tableLiteral = "'" + table.unquotedText.replacingOccurrences(of: "'", with: "''") + "'"
            let key = LockKey.HashScheme.md5FirstEightBytes.serverExpression(forTextSQL: "\(tableLiteral) || chr(58) || \(scopeSQL)")
            return [
                bound(AdvisoryLockSQL.call("pg_advisory_xact_lock", key: .int64(0)), "(\(key))"),
                bound(maxPlusOneStatement(scope: "", onConflictDoNothing: false), scopeSQL),
            ]
        case .uniqueIndexRetry:
            return [bound(maxPlusOneStatement(scope: "", onConflictDoNothing: true), scopeSQL)]
        }
    }

    func maxPlusOneStatement(scope: String, onConflictDoNothing: Bool) -> PreparedSQL {
        let table = table.quoted, scopeColumn = scopeColumn.quoted, numberColumn = numberColumn.quoted
        let conflictClause = onConflictDoNothing ? "ON CONFLICT DO NOTHING" : ""
        return PreparedSQL(
            """
            INSERT INTO \(table) (\(scopeColumn), \(numberColumn))
            SELECT $1, COALESCE(MAX(\(numberColumn)), 0) + 1 FROM \(table) WHERE \(scopeColumn) = $1
            \(conflictClause) RETURNING \(numberColumn)::text
            """,
            [.text(scope)]
        )
    }
}

extension GaplessCounter {
    /// Opens a checked transaction on `runner` (a connection leased from a `PostgresClient`, or a
    /// `PostgresConnection` you hold), allocates the next number of
    /// `scope`, runs `body` with it in the same transaction, and commits.
    ///
    /// With a `retry` policy the whole transaction (number and body) is re-run following it, so
    /// `body` must keep its effects in the database. ``RetryPolicy/resolvingCommitOutcome`` also
    /// re-runs after a lost connection without ever using a number twice: a transaction lost
    /// before `COMMIT` was rolled back (its number is handed out again), and one lost while
    /// `COMMIT` was in flight is settled with `pg_xact_status` before anything is re-run.
    @discardableResult
    public func withNextNumber<Result>(
        scope: String,
        on runner: some TransactionRunner,
        retry: RetryPolicy? = nil,
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Int64, Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        if let retry {
            return try await runner.withRetryingTransaction(retry: retry, logger: logger) { tx in
                let number = try await next(scope: scope, in: tx)
                return try await body(number, tx)
            }
        }
        if strategy == .counterRow {
            // One statement gives the number: it is chained right after BEGIN, so the caller's
            // task waits once for both.
            guard !scope.isEmpty else { throw PostgresLocksError.invalidArgument("the counter scope is empty") }
            return try await runner.withCheckedTransaction(options: .default, logger: logger, attempt: TransactionAttempt(leading: counterRowStatement(scope: scope))) { tx, rows in
                try await body(try rows[0].int64FromText(), tx)
            }
        }
        return try await runner.withCheckedTransaction(logger: logger) { tx in
            let number = try await next(scope: scope, in: tx)
            return try await body(number, tx)
        }
    }
}
