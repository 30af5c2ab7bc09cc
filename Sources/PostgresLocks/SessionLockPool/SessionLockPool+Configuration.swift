extension SessionLockPool {
    /// How a ``SessionLockPool`` connects and how many server sessions it may use.
    ///
    /// ```swift
    /// var configuration = SessionLockPool.Configuration(connection: settings)
    /// configuration.connections = 4          // sessions that carry the holds
    /// configuration.waitingConnections = 4   // sessions for waits that block
    /// ```
    public struct Configuration: Sendable {
        /// How to reach the server. The pool opens its own dedicated connections with these
        /// settings, outside any `PostgresClient` pool, so each lock lives exactly as long as
        /// its session. Without an `applicationName`, the sessions are named
        /// `pglocks-locks <instance>` (``ServiceInstance/current``, cut to 63 bytes).
        public var connection: ConnectionSettings
        /// The sessions that carry holds taken without waiting (default 4, at most 64). Holds are
        /// spread over them, the one with the fewest first.
        public var connections: Int = 4
        /// The most sessions opened for waits that block (default 4, at most 64): a wait runs on
        /// the server, in its FIFO queue and seen by deadlock detection, on a session of its own,
        /// which then carries the one hold it waited for until it is released. Past this bound
        /// a taker queues in this process, first come first served, for the next free waiting
        /// session; its `wait` deadline counts from the call.
        public var waitingConnections: Int = 4
        /// How often each session's heartbeat asks the server whether it is still the same
        /// session (one statement per session, however many locks it carries). A closed socket is
        /// noticed at once, a silent failure within `heartbeatInterval + responseTimeout`.
        public var heartbeatInterval: Duration = .seconds(5)
        /// How long a heartbeat may go unanswered before its session is taken for dead and closed.
        public var responseTimeout: Duration = .seconds(5)
        /// The first pause before a carrying session reconnects; doubles up to 5 s, with jitter.
        public var reconnectDelay: Duration = .milliseconds(100)

        /// A configuration with the defaults: 4 carrying sessions, up to 4 waiting ones.
        public init(connection: ConnectionSettings) {
            self.connection = connection
        }

        func validate() throws(PostgresLocksError) {
            try PostgresLocksError.require((1...64).contains(connections), "connections must be from 1 to 64; found \(connections)")
            try PostgresLocksError.require((0...64).contains(waitingConnections), "waitingConnections must be from 0 to 64; found \(waitingConnections)")
            try PostgresLocksError.require(heartbeatInterval > .zero && responseTimeout > .zero && reconnectDelay > .zero, "heartbeatInterval, responseTimeout and reconnectDelay must be positive")
        }
    }
}
