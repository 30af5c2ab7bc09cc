import Foundation
import PostgresLocksTestSupport
import Subprocess
import Testing
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Runs `pglock` with `arguments`, without `DATABASE_URL`; returns whether it succeeded, and
/// its standard output and standard error with every run of white space made one space (help
/// text wraps at the terminal's width).
private func pglock(_ arguments: [String], environment: [Environment.Key: String?] = [:]) async throws -> (succeeded: Bool, text: String) {
    var variables: [Environment.Key: String?] = ["DATABASE_URL": nil, "PGLOCK_LOG_LEVEL": nil, "PGLOCK_QUEUE_SCHEMA": nil, "COLUMNS": "100"]
    variables.merge(environment) { $1 }
    let result = try await withinTimeLimit(.seconds(60), "pglock \(arguments.joined(separator: " "))") { [variables] in
        try await Subprocess.run(
            .path(FilePath(try pglockExecutable())), arguments: Arguments(arguments),
            environment: .inherit.updating(variables),
            input: .none, output: .string(limit: 1 << 20), error: .string(limit: 1 << 20)
        )
    }
    let text = result.standardOutput + result.standardError
    return (result.terminationStatus.isSuccess, text.split(whereSeparator: \.isWhitespace).joined(separator: " "))
}

@Suite("pglock: help says what the commands do")
struct CommandHelpTests {
    /// A subcommand (its path) and the arguments that make a valid call of it.
    struct Invocation: Sendable, CustomStringConvertible {
        var path: [String]
        var arguments: [String] = []
        var description: String { (path + arguments).joined(separator: " ") }
    }

    /// Commands that act on the server you give, and fail without one.
    static let explicitServer: [Invocation] = [
        Invocation(path: ["doctor"]), Invocation(path: ["locks"]), Invocation(path: ["top"], arguments: ["--iterations", "1"]),
        Invocation(path: ["run"], arguments: ["--lock", "k", "--", "true"]),
        Invocation(path: ["queue", "stats"]), Invocation(path: ["queue", "list"]), Invocation(path: ["queue", "retry"], arguments: ["1"]),
        Invocation(path: ["queue", "cancel"], arguments: ["1"]), Invocation(path: ["queue", "purge"]),
        Invocation(path: ["queue", "pause"], arguments: ["q"]), Invocation(path: ["queue", "resume"], arguments: ["q"]),
        Invocation(path: ["queue", "concurrency"], arguments: ["q", "2"]), Invocation(path: ["queue", "limit"], arguments: ["q", "--max-running", "2"]),
        Invocation(path: ["queue", "unlimit"], arguments: ["q"]), Invocation(path: ["queue", "control"], arguments: ["q"]),
        Invocation(path: ["queue", "schedules"]), Invocation(path: ["queue", "work"]),
    ]
    /// Commands that start a throwaway server when given none.
    static let throwawayServer: [[String]] = [["demo"], ["bench"], ["soak"]]

    static let requiredPhrase = "(required unless $DATABASE_URL is set)"
    static let throwawayPhrase = "(default: $DATABASE_URL, else a throwaway local server)"

    @Test(arguments: explicitServer)
    func commandsOnYourServerSayTheURLIsRequiredAndRefuseWithoutOne(_ invocation: Invocation) async throws {
        let help = try await pglock(invocation.path + ["--help"])
        #expect(help.succeeded)
        #expect(help.text.contains("--database-url <url> A postgres:// URL of the server to use \(Self.requiredPhrase)"), "\(help.text)")
        #expect(!help.text.contains("throwaway local server"), "\(help.text)")

        let run = try await pglock(invocation.path + invocation.arguments)
        #expect(!run.succeeded, "pglock \(invocation) succeeded without a server")
        #expect(run.text.contains("--database-url"), "\(run.text)")
        #expect(run.text.contains("DATABASE_URL"), "\(run.text)")
    }

    @Test(arguments: throwawayServer)
    func commandsThatBringAServerSaySo(_ command: [String]) async throws {
        let help = try await pglock(command + ["--help"])
        #expect(help.succeeded)
        #expect(help.text.contains("--database-url <url> A postgres:// URL of the server to use \(Self.throwawayPhrase)"), "\(help.text)")
        #expect(!help.text.contains("required unless"), "\(help.text)")
    }

    @Test func ephemeralIsListedAndExplained() async throws {
        let root = try await pglock(["--help"])
        #expect(root.succeeded)
        #expect(root.text.contains("ephemeral Start a throwaway PostgreSQL"), "\(root.text)")
        let help = try await pglock(["ephemeral", "--help"])
        #expect(help.succeeded)
        for phrase in ["--hold", "--pgbouncer", "DATABASE_URL", "\"url\"", "jq"] {
            #expect(help.text.contains(phrase), "\(phrase) missing from: \(help.text)")
        }
    }

    @Test func queueHelpNamesTheSchemaOptionTheVariableAndTheDefault() async throws {
        for command in [["queue"], ["queue", "stats"]] {
            let help = try await pglock(command + ["--help"])
            #expect(help.succeeded)
            #expect(help.text.contains("PGLOCK_QUEUE_SCHEMA"), "\(help.text)")
            #expect(help.text.contains("pglocks_queue"), "\(help.text)")
        }
        let stats = try await pglock(["queue", "stats", "--help"])
        #expect(stats.text.contains("--schema <schema> The schema holding the queue's tables (default: $PGLOCK_QUEUE_SCHEMA, else pglocks_queue)"), "\(stats.text)")
    }
}
