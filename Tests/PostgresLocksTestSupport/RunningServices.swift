import Logging
import ServiceLifecycle

/// Runs `services` in one service group while `body` runs, then shuts them down gracefully
/// and waits for them, however `body` ends.
public func withRunningServices<T: Sendable>(_ services: [any Service], logger: Logger, _ body: @Sendable () async throws -> T) async throws -> T {
    let group = ServiceGroup(services: services, gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
    return try await withThrowingTaskGroup(of: T?.self) { tasks in
        tasks.addTask { try await group.run(); return nil }
        let result: T
        do {
            result = try await body()
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        return result
    }
}
