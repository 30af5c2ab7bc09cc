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
        /// Without an `applicationName`, the session is named
        /// `pglocks-leader <instanceID>` (cut to 63 bytes at a character boundary).
        public var connection: ConnectionSettings
        /// This instance's label, stored as the holder of the terms it starts (for people and
        /// logs; it plays no part in correctness). Default: host name, process id and a
        /// random suffix.
        public var instanceID: String
        /// How long one of a follower's polls for the lock lasts on the server before the
        /// follower checks in again (and notices a stop request or a broken connection without
        /// relying on the server). A poll is one statement that tries the lock every
        /// ``lockPollInterval`` and ends quietly when the time is up: it puts no error in the
        /// server's log and no waiter in `pg_locks`. Takeover does not wait for this interval.
        public var retryInterval: Duration
        /// How often a follower tries the leader lock during a poll (default 100 ms): after the
        /// leader's session ends, a follower takes over within about this much. Shorter means
        /// faster takeover for a few more (cheap) statements' worth of work on the server; at
        /// most ``retryInterval``.
        public var lockPollInterval: Duration
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

        /// Creates a configuration with defaults: heartbeat every 2 s, follower polls of 5 s
        /// trying the lock every 100 ms,
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
            self.lockPollInterval = .milliseconds(100)
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
                ("retryInterval", retryInterval), ("lockPollInterval", lockPollInterval), ("heartbeatInterval", heartbeatInterval),
                ("responseTimeout", responseTimeout), ("reconnectDelay", reconnectDelay),
                ("maximumReconnectDelay", maximumReconnectDelay),
            ]
            for (label, duration) in durations where duration <= .zero {
                throw .invalidArgument("\(label) must be positive; found \(duration)")
            }
            guard maximumReconnectDelay >= reconnectDelay else {
                throw .invalidArgument("maximumReconnectDelay (\(maximumReconnectDelay)) is shorter than reconnectDelay (\(reconnectDelay))")
            }
            // A follower's poll is bounded in whole milliseconds, within the server's range.
            _ = try TransactionOptions.milliseconds(retryInterval, name: "retryInterval")
            guard lockPollInterval <= retryInterval else {
                throw .invalidArgument("lockPollInterval (\(lockPollInterval)) is longer than retryInterval (\(retryInterval))")
            }
        }

        /// ``lockPollInterval`` in whole milliseconds, rounded up, at least 1.
        var lockPollMilliseconds: Int64 {
            let (seconds, attoseconds) = lockPollInterval.components
            return max(1, seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
        }

        /// The tries in one poll: the first at once, then one every ``lockPollInterval`` until
        /// ``retryInterval`` has passed.
        var lockPollAttempts: Int {
            let steps = (retryInterval / lockPollInterval).rounded(.up)
            return 1 + Int(min(max(steps, 1), Double(Int32.max - 1)))
        }
    }
}
