// The Swift blocks of the DocC article PoolConfiguration.md.
import Foundation
import Logging
import PostgresLocks
import PostgresNIO

func articlePoolConfiguration(logger: Logger) throws -> PostgresClient {
    let settings = try ConnectionSettings.fromEnvironment(ProcessInfo.processInfo.environment)
    let configuration = try settings.makeClientConfiguration(poolSize: 16)
    configuration.warnIfMemoryGrows(logger: logger)   // logs once if someone changes it into a pool that grows
    let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
    return client
}
