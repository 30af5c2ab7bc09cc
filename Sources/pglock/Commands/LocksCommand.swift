import ArgumentParser
import Foundation
import Logging
import PglockHarness
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
        let logger = makeLogger("pglock.monitor")
        return try await database.choice.withExplicitClient(maximumConnections: 2, applicationName: "pglock monitor", purpose: "the server to look at") { client in
            try await body(client, logger)
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
            struct Output: Encodable { var snapshot: LockSnapshot; var blockingTree: [BlockingTree.Node] }
            try printJSON(Output(snapshot: snapshot, blockingTree: snapshot.blockingTree))
        } else {
            print(options.renderer.render(snapshot), terminator: "")
        }
    }
}
