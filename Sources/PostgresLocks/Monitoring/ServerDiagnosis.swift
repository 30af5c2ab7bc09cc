import Logging
import PostgresNIO

/// What a server provides that the library depends on, and a verdict on each point.
public struct ServerDiagnosis: Sendable, Hashable, Codable {
    /// The facts read from the server.
    public struct Facts: Sendable, Hashable, Codable {
        /// `server_version_num` (150004 for 15.4).
        public var serverVersionNumber: Int
        /// `server_version`.
        public var serverVersion: String
        /// The pooling-proxy and exclusion probes.
        public var environment: AdvisoryLockEnvironment
        /// The pooling proxy's name and version when one answered for itself (e.g.
        /// `PgBouncer 1.18.0`), from ``ConnectionSettings/identifyPooler(logger:)``.
        public var poolerName: String?
        /// `max_locks_per_transaction`.
        public var maxLocksPerTransaction: Int
        /// `max_connections`.
        public var maxConnections: Int
        /// `max_prepared_transactions`.
        public var maxPreparedTransactions: Int
        /// Rows in `pg_locks` now (each takes a lock-table entry, fast-path locks aside).
        public var locksInUse: Int
        /// `idle_in_transaction_session_timeout` in milliseconds (0: none).
        public var idleInTransactionTimeoutMilliseconds: Int
        /// `deadlock_timeout` in milliseconds.
        public var deadlockTimeoutMilliseconds: Int
        /// The default `lock_timeout` in milliseconds (0: wait forever).
        public var lockTimeoutMilliseconds: Int
        /// The default `statement_timeout` in milliseconds (0: none).
        public var statementTimeoutMilliseconds: Int

        /// Entries in the shared lock table: `max_locks_per_transaction × (max_connections +
        /// max_prepared_transactions)`.
        public var lockTableCapacity: Int { maxLocksPerTransaction * (maxConnections + maxPreparedTransactions) }
    }

    /// How a check came out.
    public enum Level: String, Sendable, Hashable, Codable {
        /// Fine.
        case ok = "OK"
        /// Works, with a risk worth knowing.
        case warning = "WARN"
        /// The library's promises do not hold here.
        case failure = "FAIL"
    }

    /// One line of the verdict.
    public struct Verdict: Sendable, Hashable, Codable {
        /// What was checked.
        public var check: String
        /// How it came out.
        public var level: Level
        /// The figures and what to do.
        public var detail: String
    }

    /// The facts.
    public var facts: Facts
    /// One verdict per check.
    public var verdicts: [Verdict]

    /// Whether no check failed.
    public var passed: Bool { !verdicts.contains { $0.level == .failure } }

    /// Judges `facts`. Pure: no I/O.
    public static func evaluate(_ facts: Facts) -> [Verdict] {
        var verdicts: [Verdict] = []
        let major = facts.serverVersionNumber / 10000
        verdicts.append(Verdict(
            check: "server version",
            level: major >= 14 ? .ok : (major >= 12 ? .warning : .failure),
            detail: major >= 14 ? "PostgreSQL \(facts.serverVersion)"
                : "PostgreSQL \(facts.serverVersion): \(major >= 12 ? "works; pg_locks.waitstart (wait times) needs 14" : "older than 12 is not supported")"
        ))
        let pooler = facts.poolerName.map { " (\($0))" } ?? ""
        switch facts.environment.pooling {
        case .transactionPooling:
            verdicts.append(Verdict(
                check: "pooling proxy",
                level: .warning,
                detail: "transaction pooling\(pooler): two client connections were served by one server process. Transaction-scoped locks, many keys, counters, ingestion, retrying transactions and the queue work (the library's statements run unnamed here); session locks, singletons, leader election, pglock run and LISTEN are refused with transactionPooling. For those, use session pool mode or a direct URL to the server"
            ))
        case .sessionPerConnection:
            verdicts.append(Verdict(
                check: "pooling proxy",
                level: .ok,
                detail: facts.poolerName.map { "\($0) in session mode (or another mode that keeps one server session per client connection): session locks work" }
                    ?? "none in transaction mode: each connection keeps its server session, session locks work"
            ))
        case .unknown:
            verdicts.append(Verdict(
                check: "pooling proxy",
                level: .warning,
                detail: "could not tell\(pooler): the probe needs two connections at once"
            ))
        }
        switch facts.environment.advisoryLocksExclude {
        case true?:
            verdicts.append(Verdict(check: "advisory locks exclude", level: .ok, detail: "a second session was refused a held exclusive key"))
        case false?:
            verdicts.append(Verdict(check: "advisory locks exclude", level: .failure, detail: "two sessions both got the same exclusive key: this server's advisory locks do not exclude"))
        case nil:
            verdicts.append(Verdict(
                check: "advisory locks exclude",
                level: .warning,
                detail: "not checked: behind transaction pooling two client connections can share one server session, which may take a lock it holds again; check against the server directly"
            ))
        }
        let capacity = facts.lockTableCapacity
        let use = capacity > 0 ? Double(facts.locksInUse) / Double(capacity) : 1
        verdicts.append(Verdict(
            check: "lock table",
            level: use < 0.5 ? .ok : (use < 0.9 ? .warning : .failure),
            detail: "\(facts.locksInUse) of \(capacity) entries in use (max_locks_per_transaction \(facts.maxLocksPerTransaction) × (max_connections \(facts.maxConnections) + max_prepared_transactions \(facts.maxPreparedTransactions)))"
                + (use < 0.5 ? "" : "; raise max_locks_per_transaction or take fewer keys per transaction (a full table fails every lock with 53200)")
        ))
        verdicts.append(Verdict(
            check: "idle_in_transaction_session_timeout",
            level: facts.idleInTransactionTimeoutMilliseconds > 0 ? .ok : .warning,
            detail: facts.idleInTransactionTimeoutMilliseconds > 0
                ? "\(facts.idleInTransactionTimeoutMilliseconds) ms: a forgotten open transaction releases its locks"
                : "0 (off): a session left idle in a transaction holds its locks forever; consider e.g. 60s"
        ))
        verdicts.append(Verdict(
            check: "deadlock_timeout",
            level: facts.deadlockTimeoutMilliseconds <= 5000 ? .ok : .warning,
            detail: "\(facts.deadlockTimeoutMilliseconds) ms before a waiter checks for a deadlock"
                + (facts.deadlockTimeoutMilliseconds <= 5000 ? "" : ": deadlocks take long to break")
        ))
        verdicts.append(Verdict(
            check: "lock_timeout default",
            level: .ok,
            detail: facts.lockTimeoutMilliseconds == 0
                ? "0 (wait forever) by default; the library bounds its own waits per transaction"
                : "\(facts.lockTimeoutMilliseconds) ms for every session: blocking lock calls fail with 55P03 after it"
        ))
        verdicts.append(Verdict(
            check: "statement_timeout default",
            level: .ok,
            detail: facts.statementTimeoutMilliseconds == 0 ? "0 (none)" : "\(facts.statementTimeoutMilliseconds) ms: long lock waits are cancelled after it (57014)"
        ))
        return verdicts
    }
}

extension PostgresClient {
    /// Reads the server's facts and judges them; see ``ServerDiagnosis``.
    ///
    /// - Parameters:
    ///   - settings: how this client connects, if known: used to ask a pooling proxy for its
    ///     name (``ConnectionSettings/identifyPooler(logger:)``).
    ///   - logger: where the statements are logged.
    public func diagnose(settings: ConnectionSettings? = nil, logger: Logger) async throws -> ServerDiagnosis {
        let environment = try await inspectAdvisoryLockEnvironment(logger: logger)
        let poolerName = await settings?.identifyPooler(logger: logger)
        let row = try await checkedQuery("""
            SELECT current_setting('server_version_num')::int, current_setting('server_version'),
                   current_setting('max_locks_per_transaction')::int, current_setting('max_connections')::int,
                   current_setting('max_prepared_transactions')::int, (SELECT count(*)::int FROM pg_locks),
                   EXTRACT(EPOCH FROM current_setting('idle_in_transaction_session_timeout')::interval * 1000)::int,
                   EXTRACT(EPOCH FROM current_setting('deadlock_timeout')::interval * 1000)::int,
                   EXTRACT(EPOCH FROM current_setting('lock_timeout')::interval * 1000)::int,
                   EXTRACT(EPOCH FROM current_setting('statement_timeout')::interval * 1000)::int
            """, logger: logger).rows[0]
        let (version, versionText, maxLocks, maxConnections, maxPrepared, locks, idle, deadlock, lockTimeout, statementTimeout) =
            try row.decode((Int, String, Int, Int, Int, Int, Int, Int, Int, Int).self)
        let facts = ServerDiagnosis.Facts(
            serverVersionNumber: version, serverVersion: versionText, environment: environment, poolerName: poolerName,
            maxLocksPerTransaction: maxLocks, maxConnections: maxConnections, maxPreparedTransactions: maxPrepared,
            locksInUse: locks, idleInTransactionTimeoutMilliseconds: idle, deadlockTimeoutMilliseconds: deadlock,
            lockTimeoutMilliseconds: lockTimeout, statementTimeoutMilliseconds: statementTimeout
        )
        return ServerDiagnosis(facts: facts, verdicts: ServerDiagnosis.evaluate(facts))
    }
}
