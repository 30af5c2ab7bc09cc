import ArgumentParser
import Foundation
import PglockHarness
import PostgresLocks

/// `pglock`: the command-line tool of PostgresLocks.
@main
struct PGLock: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pglock",
        abstract: "Coordinate services through PostgreSQL: advisory locks, patterns on them, and a look inside.",
        discussion: """
        Commands that act on your server (doctor, locks, top, run, queue, web) need --database-url \
        or DATABASE_URL. demo, bench and soak start a throwaway local PostgreSQL when neither is \
        given, and remove it when they finish. A server that cannot be reached makes a command \
        fail within the connect timeout (--connect-timeout, default \(DatabaseChoice.defaultConnectTimeoutSeconds)s) \
        with one line on standard error that says what happened, and exit status 1.
        """,
        subcommands: [DemoCommand.self, RunCommand.self, LocksCommand.self, TopCommand.self, DoctorCommand.self, QueueCommand.self, BenchCommand.self, SoakCommand.self, WebCommand.self, EphemeralCommand.self]
    )

    /// Runs the chosen command; database errors are printed as one line
    /// (`pglock: cannot connect to 127.0.0.1:5432: connection refused (…) [connectionRefused]`),
    /// everything else as the argument parser does.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if let line = errorLine(error) {
                FileHandle.standardError.write(Data((line + "\n").utf8))
                Foundation.exit(EXIT_FAILURE)
            }
            exit(withError: error)
        }
    }

    /// The one line printed for a database error, or nil for errors the argument parser
    /// reports (usage errors, exit codes, help).
    static func errorLine(_ error: any Error) -> String? {
        guard let error = PostgresLocksError.wrap(error) as? PostgresLocksError else { return nil }
        var line = "pglock: \(error.message)"
        if let hint = error.hint { line += " (\(hint))" }
        var tags = [error.code.name]
        if let state = error.sqlState { tags.append("SQLSTATE \(state)") }
        line += " [\(tags.joined(separator: ", "))]"
        // One line, whatever the server's message holds.
        return line.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}
