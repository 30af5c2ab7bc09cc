/// How a transaction is begun: isolation level, access mode, and per-transaction timeouts.
///
/// The timeouts are set with `set_config(…, true)`, which is `SET LOCAL`: they end with the
/// transaction and never leak into the pooled connection.
public struct TransactionOptions: Sendable, Hashable {
    /// The SQL isolation level.
    public enum IsolationLevel: String, Sendable, Hashable, CaseIterable {
        /// `READ COMMITTED`: each statement sees data committed before it began.
        case readCommitted = "READ COMMITTED"
        /// `REPEATABLE READ`: the whole transaction sees one snapshot; conflicts raise 40001.
        case repeatableRead = "REPEATABLE READ"
        /// `SERIALIZABLE`: as if transactions ran one at a time; conflicts raise 40001.
        case serializable = "SERIALIZABLE"
    }

    /// Whether the transaction may write.
    public enum AccessMode: String, Sendable, Hashable, CaseIterable {
        /// `READ WRITE`.
        case readWrite = "READ WRITE"
        /// `READ ONLY`: any write fails (SQLSTATE 25006).
        case readOnly = "READ ONLY"
        /// `READ ONLY DEFERRABLE`: with ``IsolationLevel/serializable``, waits at its first
        /// statement for a snapshot that cannot conflict, then runs without the risk of a
        /// serialization failure (for long reports); no effect at other levels.
        case readOnlyDeferrable = "READ ONLY DEFERRABLE"
    }

    /// The isolation level; `nil` uses the server's default (normally read committed).
    public var isolation: IsolationLevel?
    /// The access mode; `nil` uses the server's default (normally read-write).
    public var access: AccessMode?
    /// `lock_timeout` and `statement_timeout` for this transaction only: a lock wait longer than
    /// `lockTimeout` fails with 55P03, a statement longer than `statementTimeout` with 57014.
    public var lockTimeout, statementTimeout: Duration?

    /// Creates options; each `nil` leaves the server's setting as it is.
    public init(isolation: IsolationLevel? = nil, access: AccessMode? = nil, lockTimeout: Duration? = nil, statementTimeout: Duration? = nil) {
        self.isolation = isolation
        self.access = access
        self.lockTimeout = lockTimeout
        self.statementTimeout = statementTimeout
    }

    /// The server's defaults: read committed, read-write, no timeouts.
    public static let `default` = TransactionOptions()

    /// The `BEGIN` statement; built only from the enum's fixed texts, never from user text.
    var beginStatement: String {
        var text = "BEGIN"
        if let isolation { text += " ISOLATION LEVEL \(isolation.rawValue)" }
        if let access { text += " \(access.rawValue)" }
        return text
    }

    /// Checks the timeouts and renders them as PostgreSQL millisecond settings.
    func timeoutSettings() throws(PostgresLocksError) -> (lockTimeout: String?, statementTimeout: String?) {
        (try lockTimeout.map { (d) throws(PostgresLocksError) in try Self.milliseconds(d, name: "lockTimeout") },
         try statementTimeout.map { (d) throws(PostgresLocksError) in try Self.milliseconds(d, name: "statementTimeout") })
    }

    /// A duration as PostgreSQL's `"<n>ms"`, rounded up to whole milliseconds.
    ///
    /// - Throws: `invalidArgument` for zero or negative durations (PostgreSQL reads 0 as "no
    ///   timeout") and for more than `Int32.max` milliseconds (about 24.8 days), the server's limit.
    static func milliseconds(_ duration: Duration, name: String) throws(PostgresLocksError) -> String {
        let (seconds, attoseconds) = duration.components
        guard seconds > 0 || (seconds == 0 && attoseconds > 0) else {
            throw .invalidArgument("\(name) must be positive; found \(duration)")
        }
        let wholeMilliseconds = seconds.multipliedReportingOverflow(by: 1000)
        let fraction = (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        guard !wholeMilliseconds.overflow, wholeMilliseconds.partialValue + fraction <= Int64(Int32.max) else {
            throw .invalidArgument("\(name) must be at most \(Int32.max) ms (about 24.8 days); found \(duration)")
        }
        return "\(wholeMilliseconds.partialValue + fraction)ms"
    }
}
