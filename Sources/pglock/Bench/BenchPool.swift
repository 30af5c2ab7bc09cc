import Foundation
import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO

extension BenchCommand {
    /// How the library runs its hot statements in this run (`--no-prepared-statements`: disabled).
    nonisolated(unsafe) static var preparation = StatementPreparation.automatic

    /// Runs `body` with a client of its own for a pooled scenario, its pool configured by
    /// `--pool` (the library's fixed pool, or PostgresNIO's defaults) with at most `size`
    /// connections; says on `progress` what the pool is and whether it grows.
    static func withPooledClient<Result: Sendable>(
        settings: ConnectionSettings,
        pool: PoolChoice,
        size: Int,
        progress: Progress,
        _ body: @Sendable (PostgresClient) async throws -> Result
    ) async throws -> Result {
        var settings = settings
        settings.applicationName = settings.applicationName ?? "pglock bench"
        let configuration = try pool.configuration(settings: settings, size: size)
        progress.done("pool: \(pool.describe(size: size))\(configuration.memoryGrowthWarning == nil ? "" : " (grows with work: --pool fixed does not)")")
        let client = PostgresClient(configuration: configuration, backgroundLogger: makeBackgroundLogger())
        client.statementPreparation = preparation
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}
