import ArgumentParser
import EphemeralPostgres
import Foundation
import PostgresNIO

/// `pglock ephemeral`: starts a throwaway server, checks it answers, prints where it is as JSON,
/// then stops it, or with `--hold` keeps it until the process ends. Used by the tests to check
/// EphemeralPostgres as another user and when its owner is killed.
struct EphemeralCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ephemeral",
        abstract: "Start a throwaway PostgreSQL, print its URL as JSON, and stop it (or hold it with --hold).",
        shouldDisplay: false
    )

    @Flag(help: "Keep the server until this process ends (print the JSON line, then wait).")
    var hold = false

    struct Report: Codable {
        var url: String
        var baseDirectory: String
        var postmasterPID: Int32?
        var userID: UInt32
        var answer: Int
    }

    func run() async throws {
        let logger = makeLogger("pglock.ephemeral")
        let server = try await EphemeralPostgres.start(EphemeralPostgres.Configuration(disableDurability: true), logger: logger)
        let answer = try await Self.ask(server: server)
        let report = Report(url: server.url(), baseDirectory: server.baseDirectory, postmasterPID: server.postmasterPID, userID: getuid(), answer: answer)
        FileHandle.standardOutput.write(try JSONEncoder().encode(report) + Data("\n".utf8))
        if hold {
            // Wait until the process is ended from outside (the test kills it).
            let (stream, _) = AsyncStream<Never>.makeStream()
            for await _ in stream {}
        }
        await server.shutdown()
    }

    static func ask(server: EphemeralPostgres) async throws -> Int {
        let client = PostgresClient(configuration: server.clientConfiguration(), backgroundLogger: makeLogger("pglock.ephemeral"))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            let rows = try await client.query("SELECT 6 * 7", logger: makeLogger("pglock.ephemeral")).collect()
            return try rows[0].decode(Int.self)
        }
    }
}
