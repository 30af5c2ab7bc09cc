import Foundation
import Logging
import PostgresNIO

/// Who holds and who waits for which lock on a server, at one moment: the answer to "who holds
/// this lock, and who is stuck behind whom?".
public struct LockSnapshot: Sendable, Hashable, Codable {
    /// What a lock is on.
    public enum Target: Sendable, Hashable, Codable, CustomStringConvertible {
        /// An advisory lock, decoded back to its key.
        case advisory(LockKey)
        /// A table or index, by name.
        case relation(String)
        /// A row of a relation (shown while a row lock is contended).
        case tuple(relation: String, page: Int32, tuple: Int16)
        /// A transaction id (row-lock waiters wait on the holder's transaction).
        case transaction(String)
        /// Anything else, by its `locktype`.
        case other(String)

        /// The target as text (`advisory 7:42`, `relation public.jobs`, …).
        public var description: String {
            switch self {
            case .advisory(let key): return "advisory \(key)"
            case .relation(let name): return "relation \(name)"
            case .tuple(let relation, let page, let tuple): return "row \(relation) (\(page),\(tuple))"
            case .transaction(let xid): return "transaction \(xid)"
            case .other(let type): return type
            }
        }

        /// The target as text, an advisory key with its name when `names` has one
        /// (`advisory payment:order-123 (4711…)`).
        public func description(names: [LockKey: String]) -> String {
            if case .advisory(let key) = self, let name = names[key] { return "advisory \(name) (\(key))" }
            return description
        }
    }

    /// One row of `pg_locks`.
    public struct Lock: Sendable, Hashable, Codable {
        /// The server process holding or waiting for it.
        public var pid: Int32
        /// What it is on.
        public var target: Target
        /// The mode (`ExclusiveLock`, `ShareLock`, `RowExclusiveLock`, …).
        public var mode: String
        /// Held (`true`) or waited for.
        public var granted: Bool
        /// How long it has been waited for, in seconds (waiters only).
        public var waitingSeconds: Double?

        /// A lock row.
        public init(pid: Int32, target: Target, mode: String, granted: Bool, waitingSeconds: Double? = nil) {
            self.pid = pid
            self.target = target
            self.mode = mode
            self.granted = granted
            self.waitingSeconds = waitingSeconds
        }
    }

    /// One session that holds or waits for a lock.
    public struct Session: Sendable, Hashable, Codable {
        /// The server process id.
        public var pid: Int32
        /// Its `application_name`.
        public var applicationName: String
        /// The client's address (empty for Unix sockets).
        public var client: String
        /// `active`, `idle in transaction`, …
        public var state: String
        /// The age of its open transaction, in seconds.
        public var transactionSeconds: Double?
        /// The processes it waits for (`pg_blocking_pids`).
        public var blockedBy: [Int32]
        /// The start of its current or last statement.
        public var query: String

        /// A session.
        public init(pid: Int32, applicationName: String, client: String, state: String, transactionSeconds: Double?, blockedBy: [Int32], query: String) {
            self.pid = pid
            self.applicationName = applicationName
            self.client = client
            self.state = state
            self.transactionSeconds = transactionSeconds
            self.blockedBy = blockedBy
            self.query = query
        }
    }

    /// A snapshot of `locks` held or awaited by `sessions`; `omittedLocks` were left out by a
    /// limit.
    public init(takenAt: Date, locks: [Lock], sessions: [Session], omittedLocks: Int = 0) {
        self.takenAt = takenAt
        self.locks = locks
        self.sessions = sessions
        self.omittedLocks = omittedLocks
    }

    /// When the snapshot was taken (server clock).
    public var takenAt: Date
    /// The locks, waiters first, then by process.
    public var locks: [Lock]
    /// The sessions involved.
    public var sessions: [Session]
    /// Granted locks left out by the snapshot's limit (locks nobody waits for, held by
    /// sessions that block no one, are the first to go).
    public var omittedLocks: Int = 0

    /// The default bound on the locks a snapshot reads.
    public static let defaultLimit = 2_000

    /// Waiting processes and what blocks them, as trees under their root blockers.
    public var blockingTree: [BlockingTree.Node] {
        BlockingTree.build(blockedBy: Dictionary(uniqueKeysWithValues: sessions.map { ($0.pid, $0.blockedBy) }))
    }
}

extension PostgresClient {
    /// Takes a ``LockSnapshot`` of the locks in the connected database (advisory, relation,
    /// row and transaction locks of other sessions), with their sessions and blockers.
    ///
    /// At most `limit` locks are read: every waited-for lock first, then the locks of sessions
    /// that block someone, then the rest; ``LockSnapshot/omittedLocks`` counts what was left
    /// out. The blockers of each waiting session are asked once per session, not per lock, so
    /// the snapshot stays cheap with thousands of locks held.
    public func lockSnapshot(limit: Int = LockSnapshot.defaultLimit, logger: Logger) async throws -> LockSnapshot {
        let rows = try await checkedQuery(LockSnapshot.query(limit: max(1, min(limit, 1_000_000))), logger: logger).rows
        var locks: [LockSnapshot.Lock] = []
        var sessions: [Int32: LockSnapshot.Session] = [:]
        var takenAt = Date()
        var total = 0
        for row in rows {
            let (now, locktype, relation, classid, objid, objsubid, page, tuple, xid, mode, granted, pid, waiting,
                 application, client, state, transactionSeconds, blockedBy, query, count) =
                try row.decode((Date, String, String?, Int64?, Int64?, Int16?, Int32?, Int16?, String?, String, Bool, Int32, Double?,
                                String?, String?, String?, Double?, [Int32]?, String?, Int64).self)
            takenAt = now
            total = Int(count)
            let target: LockSnapshot.Target
            switch locktype {
            case "advisory":
                if let classid, let objid, let objsubid, let key = LockKey(classid: UInt32(truncatingIfNeeded: classid), objid: UInt32(truncatingIfNeeded: objid), objsubid: objsubid) {
                    target = .advisory(key)
                } else {
                    target = .other("advisory")
                }
            case "relation": target = .relation(relation ?? "?")
            case "tuple": target = .tuple(relation: relation ?? "?", page: page ?? 0, tuple: tuple ?? 0)
            case "transactionid": target = .transaction(xid ?? "?")
            default: target = .other(locktype)
            }
            locks.append(LockSnapshot.Lock(pid: pid, target: target, mode: mode, granted: granted, waitingSeconds: granted ? nil : waiting))
            if sessions[pid] == nil {
                sessions[pid] = LockSnapshot.Session(
                    pid: pid, applicationName: application ?? "", client: client ?? "", state: state ?? "",
                    transactionSeconds: transactionSeconds, blockedBy: blockedBy ?? [], query: String((query ?? "").prefix(200))
                )
            }
        }
        return LockSnapshot(takenAt: takenAt, locks: locks, sessions: sessions.values.sorted { $0.pid < $1.pid }, omittedLocks: max(0, total - locks.count))
    }
}

extension LockSnapshot {
    /// The snapshot's statement: the locks of other sessions in this database, waited-for
    /// ones first, then those of sessions that block someone, at most `limit` rows, each with
    /// the count of all matching rows. `pg_blocking_pids` is called once per waiting session.
    ///
    /// A session waits when `pg_locks` lists a lock it has not been granted. Its
    /// `wait_event_type` is not a sure sign: a waiter leaves the `Lock` wait event for a moment
    /// whenever it is woken (a signal from another backend, such as a cache-invalidation
    /// catch-up on a busy cluster) and goes back to waiting; a snapshot taken then would show it
    /// blocked by no one, and so as a root blocker. `pg_locks` is read once (`lock_rows`), so the
    /// waiters and the rows shown come from the same view of the lock table, at the cost of one
    /// read (a second read of 5,000 locks added 1.5–2.5 ms, about 10%).
    static func query(limit: Int) -> PostgresQuery {
        let limit = Int64(limit)
        return """
        WITH lock_rows AS MATERIALIZED (
            SELECT * FROM pg_locks
        ), activity AS (
            SELECT a.pid, a.application_name, COALESCE(host(a.client_addr), '') AS client, a.state,
                   a.xact_start, a.state_change, a.query,
                   CASE WHEN a.pid IN (SELECT w.pid FROM lock_rows w WHERE NOT w.granted)
                        THEN pg_blocking_pids(a.pid) ELSE '{}'::int[] END AS blocked_by
            FROM pg_stat_activity a
            WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
        ), blockers AS (
            SELECT DISTINCT unnest(blocked_by) AS pid FROM activity
        ), picked AS (
            SELECT l.*, count(*) OVER () AS total
            FROM lock_rows l
            WHERE l.pid IS NOT NULL AND l.pid <> pg_backend_pid()
              AND l.locktype IN ('advisory', 'relation', 'tuple', 'transactionid')
              AND (l.database IS NULL OR l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
              -- Relation locks are many (every table a statement touches); keep the ones that
              -- matter: waited for, or strong enough to block writers.
              AND (l.locktype <> 'relation' OR NOT l.granted
                   OR l.mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'))
              AND (l.locktype <> 'transactionid' OR NOT l.granted
                   OR EXISTS (SELECT 1 FROM lock_rows w WHERE w.locktype = 'transactionid' AND NOT w.granted AND w.transactionid = l.transactionid))
              AND l.pid IN (SELECT pid FROM activity)
            ORDER BY l.granted, (l.pid IN (SELECT pid FROM blockers)) DESC, l.pid
            LIMIT \(limit)
        )
        SELECT clock_timestamp(), l.locktype,
               CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text END,
               l.classid::int8, l.objid::int8, l.objsubid, l.page, l.tuple, l.transactionid::text,
               l.mode, l.granted, l.pid,
               CASE WHEN COALESCE(l.waitstart, a.state_change) IS NOT NULL
                    THEN GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - COALESCE(l.waitstart, a.state_change))) END::float8,
               a.application_name, a.client, a.state,
               CASE WHEN a.xact_start IS NOT NULL THEN GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - a.xact_start)) END::float8,
               a.blocked_by, a.query, l.total
        FROM picked l
        JOIN activity a ON a.pid = l.pid
        ORDER BY l.granted, (l.pid IN (SELECT pid FROM blockers)) DESC, l.pid
        """
    }
}
