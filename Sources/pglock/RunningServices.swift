import Logging
import ServiceLifecycle

/// Runs `services` in a service group while `body` runs; then shuts them down gracefully and
/// waits for them before returning what `body` returned.
func withRunningServices<Result: Sendable>(
    _ services: [any Service],
    logger: Logger,
    _ body: () async throws -> Result
) async throws -> Result {
    let group = ServiceGroup(services: services, gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        let result = try await body()
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        return result
    }
}
