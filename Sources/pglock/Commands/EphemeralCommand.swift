import ArgumentParser
import EphemeralPostgres
import Foundation
import PglockHarness
import PostgresNIO

/// `pglock ephemeral`: starts a throwaway server, checks it answers, prints where it is as JSON,
/// then stops it, or with `--hold` keeps it until the process ends. With `--pgbouncer MODE` it
/// also starts a throwaway PgBouncer in front of the server. For trying the library and the
/// examples against a server of their own (`Examples/InvoiceService/README.md`), and used by the
/// tests to check EphemeralPostgres and EphemeralPgBouncer as another user and when their owner
/// is killed.
struct EphemeralCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ephemeral",
        abstract: "Start a throwaway PostgreSQL, print its URL as JSON, and stop it (or keep it with --hold).",
        discussion: """
        The server is found on PATH or under /usr/lib/postgresql/*/bin (apt-get install postgresql). \
        It listens on a Unix socket in a fresh folder under the temporary directory, without \
        durability (fsync off): for trying things, never for data you want to keep.

        Prints one JSON line on standard output: "url" (a postgres:// URL to give as \
        --database-url or DATABASE_URL), "baseDirectory", "postmasterPID", "userID" and "answer" \
        (SELECT 6 * 7, to show it answers); with --pgbouncer also "pgbouncerURL", \
        "pgbouncerDirectory", "pgbouncerPID" and "pgbouncerAnswer". Slashes are escaped: read \
        it with jq.

        Without --hold the server is stopped and removed at once (a check that one can be \
        started). With --hold it is kept until this process ends (Ctrl-C, a kill, even \
        SIGKILL) or the process that started it ends; then it is stopped and its folder removed.

        Example:
          pglock ephemeral --hold > /tmp/pg.json &
          export DATABASE_URL=$(jq -r .url /tmp/pg.json)
        """
    )

    @Flag(help: "Keep the server until this process or its parent ends (print the JSON line, then wait).")
    var hold = false

    @Option(help: "Also start a PgBouncer in front of the server, in this pool mode (session, transaction or statement).")
    var pgbouncer: String?

    typealias Report = EphemeralReport

    func validate() throws {
        if let pgbouncer, EphemeralPgBouncer.PoolMode(rawValue: pgbouncer) == nil {
            throw ValidationError("--pgbouncer must be session, transaction or statement, not '\(pgbouncer)'")
        }
    }

    func run() async throws {
        let logger = makeLogger("pglock.ephemeral")
        let server = try await EphemeralPostgres.start(EphemeralPostgres.Configuration(disableDurability: true), logger: logger)
        let answer = try await Self.ask(server.clientConfiguration())
        var report = Report(url: server.url(), baseDirectory: server.baseDirectory, postmasterPID: server.postmasterPID, answer: answer)
        var pooler: EphemeralPgBouncer?
        if let mode = pgbouncer.flatMap(EphemeralPgBouncer.PoolMode.init(rawValue:)) {
            let started = try await EphemeralPgBouncer.start(in: server, poolMode: mode, logger: logger)
            pooler = started
            report.pgbouncerURL = started.url()
            report.pgbouncerDirectory = started.baseDirectory
            report.pgbouncerPID = started.pid
            report.pgbouncerAnswer = try await Self.ask(started.clientConfiguration())
        }
        FileHandle.standardOutput.write(try JSONEncoder().encode(report) + Data("\n".utf8))
        if hold {
            // Wait until the process is ended from outside (the test kills it), or until the
            // process that started this one is gone (a test run that died first): then clean up.
            let parent = getppid()
            while getppid() == parent {
                try await Task.sleep(for: .milliseconds(250))
            }
        }
        await pooler?.shutdown()
        await server.shutdown()
    }

    static func ask(_ configuration: PostgresClient.Configuration) async throws -> Int {
        let client = PostgresClient(configuration: configuration, backgroundLogger: makeLogger("pglock.ephemeral"))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            let rows = try await client.query("SELECT 6 * 7", logger: makeLogger("pglock.ephemeral")).collect()
            return try rows[0].decode(Int.self)
        }
    }
}
