import ArgumentParser
import Foundation
import Hummingbird
import Logging
import PostgresLocks
import PostgresLocksWeb
import PglockHarness
import PostgresNIO

/// `pglock web`: the web console for locks, queues, leaders and the doctor, served by itself.
struct WebCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "web",
        abstract: "Serve a web console of locks, queues, leaders and the doctor's findings (127.0.0.1:8080 by default).",
        discussion: """
        Binds to 127.0.0.1 unless --listen says otherwise. Binding to any other address requires \
        sign-in: set PGLOCK_WEB_USER and PGLOCK_WEB_PASSWORD, or PGLOCK_WEB_TOKEN, or \
        PGLOCK_WEB_TOKEN_FILE (a file whose first line is the token; --token-file does the same). \
        Browsers sign in with basic auth (with a token: any user name, the token as password); \
        scripts may send "Authorization: Bearer <token>". Every action (retry, cancel, discard, \
        pause, resume, cancel or terminate a backend) is confirmed in the page and logged on \
        standard error with who did it; --read-only hides them all.
        """
    )

    @OptionGroup var database: DatabaseOptions

    @Option(help: ArgumentHelp("The address to serve on, host:port (port 0: any free port).", valueName: "host:port"))
    var listen = "127.0.0.1:8080"

    @Option(name: .customLong("schema"), help: ArgumentHelp("A queue schema to show (repeatable; default: $PGLOCK_QUEUE_SCHEMA, else pglocks_queue).", valueName: "schema"))
    var schemas: [String] = []

    @Option(name: .customLong("terms-table"), help: ArgumentHelp("A leader election terms table to show (repeatable; default: pglocks_leader_terms).", valueName: "[schema.]table"))
    var termsTables: [String] = []

    @Option(name: .customLong("name"), help: "A lock name to recognise among hashed advisory keys (repeatable).")
    var names: [String] = []

    @Option(name: .customLong("token-file"), help: ArgumentHelp("A file whose first line is the sign-in token.", valueName: "path"))
    var tokenFile: String?

    @Flag(help: "Hide every action; show only.")
    var readOnly = false

    @Option(help: "How often pages refresh themselves, e.g. 2s.")
    var refresh = "2s"

    func run() async throws {
        let (host, port) = try Self.parseListen(listen)
        let environment = ProcessInfo.processInfo.environment
        let authentication = try tokenFile.map { try WebConsoleAuthentication.tokenFromFile($0) } ?? WebConsoleAuthentication.fromEnvironment(environment)
        if !LoopbackHost.isLoopback(host: host) && !authentication.isRequired {
            throw ValidationError("--listen \(host) is reachable from other machines: set PGLOCK_WEB_USER and PGLOCK_WEB_PASSWORD, PGLOCK_WEB_TOKEN or PGLOCK_WEB_TOKEN_FILE (or --token-file) first")
        }
        var schemas = self.schemas
        if schemas.isEmpty { schemas = [environment["PGLOCK_QUEUE_SCHEMA"].flatMap { $0.isEmpty ? nil : $0 } ?? "pglocks_queue"] }
        let termsTables: [QualifiedName] = try termsTables.isEmpty ? [LeaderElection.Configuration.defaultTermsTable] : termsTables.map { text in
            let parts = text.split(separator: ".", maxSplits: 1).map(String.init)
            return parts.count == 2 ? try QualifiedName(schema: parts[0], parts[1]) : try QualifiedName(parts[0])
        }
        let refresh = try parseDuration(self.refresh)
        guard refresh >= .milliseconds(500) else { throw ValidationError("--refresh must be at least 500ms") }
        let settings = try database.choice.explicitSettings()
        var logger = makeLogger("pglock.web")
        if environment["PGLOCK_LOG_LEVEL"] == nil { logger.logLevel = .notice }
        let readOnly = self.readOnly, names = self.names, queueSchemas = schemas, consoleLogger = logger
        try await database.choice.withExplicitClient(maximumConnections: 4, applicationName: "pglock web", purpose: "the server to show") { client in
            let console = try WebConsole(client: client, configuration: WebConsole.Configuration(
                queueSchemas: queueSchemas, leaderTermsTables: termsTables, knownLockNames: names, readOnly: readOnly,
                authentication: authentication, refreshInterval: refresh, connection: settings
            ), logger: consoleLogger)
            let router = Router()
            console.addRoutes(to: router)
            var serverLogger = Logger(label: "pglock.web.server")
            serverLogger.logLevel = .warning
            let app = Application(
                router: router,
                configuration: .init(address: .hostname(host, port: port), serverName: "pglock web"),
                onServerRunning: { channel in
                    let bound = channel.localAddress?.port ?? port
                    let shownHost = host.contains(":") ? "[\(host)]" : host
                    let line = "pglock web: serving http://\(shownHost):\(bound)/\(readOnly ? " (read-only)" : "")\(authentication.isRequired ? " (sign-in required)" : "")\n"
                    FileHandle.standardOutput.write(Data(line.utf8))
                },
                logger: serverLogger
            )
            try await app.runService()
        }
    }

    /// `host:port`, `[v6]:port` or `:port` (loopback).
    static func parseListen(_ text: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--listen takes host:port, e.g. 127.0.0.1:8080")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }
}
