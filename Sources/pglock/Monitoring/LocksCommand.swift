import ArgumentParser
import Foundation
import Logging
import PostgresLocks
import PostgresNIO

/// Options shared by `pglock locks` and `pglock top`.
struct MonitorOptions: ParsableArguments {
    @Option(name: .customLong("name"), help: "A lock name to recognise among hashed advisory keys (repeatable).")
    var names: [String] = []

    @OptionGroup var database: DatabaseOptions

    var renderer: LockSnapshotRenderer {
        var renderer = LockSnapshotRenderer()
        for name in names { renderer.knownNames[.hashed(name)] = name }
        return renderer
    }

    /// Runs `body` with a small client on the server to watch (never a throwaway one).
    func withClient<T: Sendable>(_ body: @Sendable (PostgresClient, Logger) async throws -> T) async throws -> T {
        guard let settings = try database.explicitSettings() else {
            throw ValidationError("give --database-url or DATABASE_URL: the server to look at")
        }
        try await settings.checkConnection(logger: makeLogger("pglock.monitor"))  // fail fast with the real reason
        var configuration = try settings.makeClientConfiguration()
        configuration.options.maximumConnections = 2
        configuration.options.additionalStartupParameters = [("application_name", "pglock monitor")]
        let client = PostgresClient(configuration: configuration, backgroundLogger: makeBackgroundLogger())
        let logger = makeLogger("pglock.monitor")
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client, logger)
        }
    }
}

/// `pglock locks`: one snapshot of who holds and who waits, for scripts (`--json`) and people.
struct LocksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "locks",
        abstract: "Print who holds and who waits for advisory and row locks, with the blocking tree, once."
    )

    @OptionGroup var options: MonitorOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let snapshot = try await options.withClient { client, logger in try await client.lockSnapshot(logger: logger) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            struct Output: Encodable { var snapshot: LockSnapshot; var blockingTree: [BlockingTree.Node] }
            print(String(decoding: try encoder.encode(Output(snapshot: snapshot, blockingTree: snapshot.blockingTree)), as: UTF8.self))
        } else {
            print(options.renderer.render(snapshot), terminator: "")
        }
    }
}
