import Foundation
import PostgresLocks
import PostgresNIO

extension QueueWorker {
    /// How a worker claims, runs and maintains jobs.
    public struct Configuration: Sendable {
        /// The queue to work.
        public var queue: String
        /// Jobs run at once, at most.
        public var concurrency: Int
        /// Jobs claimed per statement, at most.
        public var claimBatchSize: Int
        /// The lease (visibility timeout) a claim takes; a job whose lease expires is reclaimed.
        public var lease: Duration
        /// How often running jobs' leases are pushed forward (default: a third of the lease).
        public var heartbeat: Duration
        /// The fallback poll when no notification arrives.
        public var pollInterval: Duration
        /// How often this worker reclaims expired leases (every worker may; they do not collide).
        public var reapInterval: Duration
        /// Delays between attempts of a failed job.
        public var backoff: Backoff
        /// Completed and cancelled jobs are deleted this long after they finished (`nil`: never).
        public var retention: Duration?
        /// How long graceful shutdown waits for running jobs before giving their leases back.
        public var shutdownGracePeriod: Duration
        /// The name written into leases (`ServiceInstance.defaultID()` by default).
        public var owner: String
        /// Where to open a dedicated connection for `LISTEN` (wake-ups within milliseconds);
        /// `nil` polls only. Behind a transaction-pooling proxy the worker polls instead, and
        /// says so once. Without an `applicationName`, the session is named
        /// `pglocks-queue-listen <owner>` (cut to 63 bytes).
        public var listen: ConnectionSettings?

        /// A configuration for `queue`.
        public init(
            queue: String = "default",
            concurrency: Int = 16,
            claimBatchSize: Int = 100,
            lease: Duration = .seconds(30),
            heartbeat: Duration? = nil,
            pollInterval: Duration = .seconds(1),
            reapInterval: Duration = .seconds(5),
            backoff: Backoff = Backoff(),
            retention: Duration? = .seconds(24 * 3600),
            shutdownGracePeriod: Duration = .seconds(10),
            owner: String? = nil,
            listen: ConnectionSettings? = nil
        ) {
            self.queue = queue
            self.concurrency = concurrency
            self.claimBatchSize = claimBatchSize
            self.lease = lease
            self.heartbeat = heartbeat ?? lease / 3
            self.pollInterval = pollInterval
            self.reapInterval = reapInterval
            self.backoff = backoff
            self.retention = retention
            self.shutdownGracePeriod = shutdownGracePeriod
            self.owner = owner ?? ServiceInstance.defaultID()
            self.listen = listen
        }

        func validate() throws {
            try NewJob.validateName(queue, what: "queue name")
            try PostgresLocksError.require((1...10_000).contains(concurrency), "concurrency must be from 1 to 10000; found \(concurrency)")
            try PostgresLocksError.require((1...10_000).contains(claimBatchSize), "claimBatchSize must be from 1 to 10000; found \(claimBatchSize)")
            _ = try JobQueue.leaseMilliseconds(lease)
            try PostgresLocksError.require(heartbeat > .zero && heartbeat < lease, "the heartbeat (\(heartbeat)) must be positive and shorter than the lease (\(lease))")
            for (name, value) in [("pollInterval", pollInterval), ("reapInterval", reapInterval), ("shutdownGracePeriod", shutdownGracePeriod)] where value <= .zero {
                throw PostgresLocksError(code: .invalidArgument, message: "\(name) must be positive; found \(value)")
            }
        }
    }
}
