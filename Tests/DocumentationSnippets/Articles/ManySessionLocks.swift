// The Swift blocks of the DocC article ManySessionLocks.md.
import Logging
import PostgresLocks
import PostgresNIO
import ServiceLifecycle

func articleManySessionLocks(settings: ConnectionSettings, shardService: any Service, shard: Int, logger: Logger) async throws {
    let locks = try SessionLockPool(configuration: .init(connection: settings), logger: logger)
    // First in the group, so that it stops after the services that use it.
    let group = ServiceGroup(services: [locks, shardService], gracefulShutdownSignals: [.sigterm], logger: logger)

    // In the services: a lock per shard, each body cancelled with `lockLost` if the
    // session carrying its lock dies.
    try await locks.withLock(.hashed("shard:\(shard)")) {
        try await serveShard(shard)
    }

    // A lock that outlives a closure: held until released, released at most once.
    let lock = try await locks.acquire(.hashed("tenant:acme"), wait: .timeout(.seconds(5)))
    try await migrateTenant("acme")
    try await lock.release()
    _ = group
}

@Sendable func serveShard(_ shard: Int) async throws {}
func migrateTenant(_ tenant: String) async throws {}
