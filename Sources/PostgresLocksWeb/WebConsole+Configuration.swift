import PostgresLocks

extension WebConsole {
    /// What a ``WebConsole`` shows and allows.
    ///
    /// ```swift
    /// var configuration = WebConsole.Configuration(mountPath: "/ops")
    /// configuration.queueSchemas = ["jobs"]
    /// configuration.readOnly = true
    /// ```
    public struct Configuration: Sendable {
        /// Where the console's pages live under the application's router (`""` for the root,
        /// else a path such as `/ops`).
        public var mountPath: String
        /// The schemas of the queues to show (`JobQueue(schema:)`); the first is the default.
        public var queueSchemas: [String]
        /// The terms tables of the leader elections to show.
        public var leaderTermsTables: [QualifiedName]
        /// Names to show for hashed advisory keys (`LockKey.hashed(name)`); the elections'
        /// names are recognised without being listed.
        public var knownLockNames: [String]
        /// Hides every action (retry, cancel, discard, pause, resume, cancel or terminate a
        /// backend) and refuses their requests.
        public var readOnly: Bool
        /// Who may use the console. ``WebConsoleAuthentication/none`` is for a console
        /// reachable on the loopback interface only.
        public var authentication: WebConsoleAuthentication
        /// How often pages refresh themselves in the browser.
        public var refreshInterval: Duration
        /// The most locks a locks page reads (waited-for ones and their blockers first).
        public var lockLimit: Int
        /// How to reach the server, if known: lets the doctor page name a pooler in between.
        public var connection: ConnectionSettings?

        /// A configuration with defaults: mounted at the root, the default queue schema
        /// `pglocks_queue`, the default terms table, actions allowed, no sign-in, a refresh every
        /// 2 s, at most 2,000 locks read.
        public init(
            mountPath: String = "",
            queueSchemas: [String] = ["pglocks_queue"],
            leaderTermsTables: [QualifiedName] = [LeaderElection.Configuration.defaultTermsTable],
            knownLockNames: [String] = [],
            readOnly: Bool = false,
            authentication: WebConsoleAuthentication = .none,
            refreshInterval: Duration = .seconds(2),
            lockLimit: Int = LockSnapshot.defaultLimit,
            connection: ConnectionSettings? = nil
        ) {
            self.mountPath = mountPath
            self.queueSchemas = queueSchemas
            self.leaderTermsTables = leaderTermsTables
            self.knownLockNames = knownLockNames
            self.readOnly = readOnly
            self.authentication = authentication
            self.refreshInterval = refreshInterval
            self.lockLimit = lockLimit
            self.connection = connection
        }
    }
}
