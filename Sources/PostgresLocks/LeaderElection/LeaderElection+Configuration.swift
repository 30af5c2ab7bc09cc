import Logging

extension LeaderElection {
    /// How a ``LeaderElection`` runs: which election, where its terms are stored, how it
    /// connects, and the intervals that bound how fast it notices changes.
    ///
    /// ```swift
    /// var configuration = LeaderElection.Configuration(name: "billing-scheduler", connection: settings)
    /// configuration.heartbeatInterval = .seconds(1)
    /// let election = try LeaderElection(configuration: configuration)
    /// ```
    public struct Configuration: Sendable {
        /// The election's name: its row in ``termsTable`` and, unless ``key`` is set otherwise,
        /// the source of its advisory lock key.
        public var name: String
        /// The advisory lock whose holder leads (default: `LockKey.hashed(name)`).
        public var key: LockKey
        /// The table holding each election's current term (created if missing).
        public var termsTable: QualifiedName
        /// How to reach the server. The election opens its own dedicated connection with these
        /// settings, outside any pool, so the lock lives exactly as long as that session.
        /// Without an `applicationName`, the session is named `pglocks-leader`.
        public var connection: ConnectionSettings
        /// This instance's label, stored as the holder of the terms it starts (for people and
        /// logs; it plays no part in correctness). Default: host name, process id and a
        /// random suffix.
        public var instanceID: String
        /// The longest a follower waits on the server for the lock before it checks in again.
        /// A follower queues on the lock, so it takes over as soon as the leader's session
        /// ends; this interval only bounds how long one wait lasts (each expiry is a
        /// `lock_timeout`, which the server logs as an error line).
        public var retryInterval: Duration
        /// How often the leader checks that its session still holds the leader lock. A closed
        /// socket is noticed at once; a silent network failure within
        /// `heartbeatInterval + responseTimeout`.
        public var heartbeatInterval: Duration
        /// How long any statement of the election may go unanswered before the connection
        /// is considered dead and closed. A new leader's term bump waits for the fenced
        /// transactions of the previous term, so keep those shorter than this.
        public var responseTimeout: Duration
        /// The first delay before reconnecting after the connection failed; it doubles with
        /// each failure in a row, up to ``maximumReconnectDelay``, with equal jitter
        /// (``Backoff``).
        public var reconnectDelay: Duration
        /// The longest delay between reconnection attempts.
        public var maximumReconnectDelay: Duration

        /// The default terms table, `pglocks_leader_terms`.
        public static var defaultTermsTable: QualifiedName {
            // A constant name that satisfies the identifier rules.
            QualifiedName(name: try! SQLIdentifier("pglocks_leader_terms"))
        }

        /// Creates a configuration with defaults: heartbeat every 2 s, follower waits of 5 s,
        /// a 5 s response timeout, reconnects from 100 ms doubling up to 5 s.
        ///
        /// - Parameters:
        ///   - name: the election's name; instances with the same name compete.
        ///   - key: the advisory lock key (default: `LockKey.hashed(name)`).
        ///   - connection: how to reach the server.
        ///   - termsTable: where terms are stored (default ``defaultTermsTable``).
        ///   - instanceID: this instance's label (default ``defaultInstanceID()``).
        public init(
            name: String,
            key: LockKey? = nil,
            connection: ConnectionSettings,
            termsTable: QualifiedName = Configuration.defaultTermsTable,
            instanceID: String = Configuration.defaultInstanceID()
        ) {
            self.name = name
            self.key = key ?? .hashed(name)
            self.connection = connection
            self.termsTable = termsTable
            self.instanceID = instanceID
            self.retryInterval = .seconds(5)
            self.heartbeatInterval = .seconds(2)
            self.responseTimeout = .seconds(5)
            self.reconnectDelay = .milliseconds(100)
            self.maximumReconnectDelay = .seconds(5)
        }

        /// Creates a configuration with the terms table given as text, validated here.
        ///
        /// - Throws: ``PostgresLocksError/Code/invalidArgument`` if `termsTable` or `schema`
        ///   is not a valid identifier (nothing is sent to any server).
        public init(
            name: String,
            key: LockKey? = nil,
            connection: ConnectionSettings,
            termsTable: String,
            schema: String? = nil,
            instanceID: String = Configuration.defaultInstanceID()
        ) throws(PostgresLocksError) {
            self.init(
                name: name, key: key, connection: connection,
                termsTable: try QualifiedName(schema: schema, termsTable),
                instanceID: instanceID
            )
        }

        /// `host/pid/random` (``ServiceInstance/defaultID()``): unique enough to tell instances
        /// apart in the terms table.
        public static func defaultInstanceID() -> String { ServiceInstance.defaultID() }

        /// Checks every setting; nothing is sent to the server.
        func validate() throws(PostgresLocksError) {
            guard !name.isEmpty else { throw .invalidArgument("the election's name is empty") }
            guard !name.utf8.contains(0) else { throw .invalidArgument("the election's name contains a NUL byte") }
            guard !instanceID.utf8.contains(0) else { throw .invalidArgument("the instance id contains a NUL byte") }
            let durations: [(String, Duration)] = [
                ("retryInterval", retryInterval), ("heartbeatInterval", heartbeatInterval),
                ("responseTimeout", responseTimeout), ("reconnectDelay", reconnectDelay),
                ("maximumReconnectDelay", maximumReconnectDelay),
            ]
            for (label, duration) in durations where duration <= .zero {
                throw .invalidArgument("\(label) must be positive; found \(duration)")
            }
            guard maximumReconnectDelay >= reconnectDelay else {
                throw .invalidArgument("maximumReconnectDelay (\(maximumReconnectDelay)) is shorter than reconnectDelay (\(reconnectDelay))")
            }
            // The follower's wait is a lock_timeout: whole milliseconds, within the server's range.
            _ = try TransactionOptions.milliseconds(retryInterval, name: "retryInterval")
        }
    }
}
