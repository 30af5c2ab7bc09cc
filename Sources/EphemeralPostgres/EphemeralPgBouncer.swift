#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// A throwaway PgBouncer in front of an ``EphemeralPostgres``, for tests of what clients do
/// through a connection pooler.
///
/// ```swift
/// let pooler = try await EphemeralPgBouncer.start(in: server, poolMode: .transaction)
/// let client = PostgresClient(configuration: pooler.clientConfiguration(database: "app"), backgroundLogger: logger)
/// ...
/// await pooler.shutdown()
/// ```
///
/// Or scoped, so the pooler is always removed:
///
/// ```swift
/// try await EphemeralPgBouncer.withPooler(in: server, poolMode: .session) { pooler in ... }
/// ```
///
/// What it does:
/// - finds `pgbouncer` (``locateExecutable(searchPath:)``: `PATH`, then `/usr/sbin`);
/// - writes a `pgbouncer.ini` into a fresh folder under `/tmp`: listening on 127.0.0.1 only at a
///   free port, its Unix socket in that folder, `auth_type = trust` with an `auth_file` naming the
///   server's superuser, and one fallback database entry `* = host=<server socket folder> port=<server port>`
///   so that every database name is passed through to the server;
/// - as root, runs the pooler as an unprivileged user (`postgres`), because it refuses root;
/// - runs it under a **watchdog** (`/bin/sh`) whose standard input is a pipe that only this
///   process holds open. When this process ends, however it ends (even `SIGKILL`), the pipe closes
///   and the watchdog kills the pooler and deletes the folder. ``shutdown()`` closes the pipe and
///   waits for the watchdog, so there is one cleanup path for every case;
/// - returns once a query through the pooler's TCP port has been answered.
public final class EphemeralPgBouncer: Sendable {
    /// The address the pooler listens on.
    public static let loopbackHost = "127.0.0.1"

    /// The temporary folder holding everything (configuration, socket, log, pid file).
    public let baseDirectory: String
    /// The port the pooler listens on, on 127.0.0.1 (and the number of its Unix socket file).
    public let port: Int
    /// The host the pooler listens on: always `127.0.0.1`.
    public var host: String { Self.loopbackHost }
    /// The pool mode it was started with.
    public let poolMode: PoolMode
    /// The configuration it was started with.
    public let configuration: Configuration
    /// The server it stands in front of.
    public let server: EphemeralPostgres
    /// The role clients log in as (the server's superuser).
    public let user: String
    /// The `pgbouncer` program in use.
    public let executable: String
    /// The configuration file.
    public var configurationFile: String { baseDirectory + "/pgbouncer.ini" }
    /// The pooler's log file.
    public var logFile: String { baseDirectory + "/pgbouncer.log" }
    /// The file the pooler writes its process id to.
    public var pidFile: String { baseDirectory + "/pgbouncer.pid" }
    /// The folder holding the pooler's Unix socket `.s.PGSQL.<port>`.
    public var socketDirectory: String { baseDirectory + "/socket" }
    var standardErrorFile: String { baseDirectory + "/pgbouncer.stderr" }

    private let watchdog: Watchdog
    private let logger: Logger

    private init(
        baseDirectory: String, port: Int, poolMode: PoolMode, configuration: Configuration, server: EphemeralPostgres,
        executable: String, watchdog: Watchdog, logger: Logger
    ) {
        self.baseDirectory = baseDirectory
        self.port = port
        self.poolMode = poolMode
        self.configuration = configuration
        self.server = server
        self.user = server.superuser
        self.executable = executable
        self.watchdog = watchdog
        self.logger = logger
    }

    /// Starts a throwaway pooler in front of `server`, waiting until a query through it is answered.
    ///
    /// - Throws: ``EphemeralPostgresError``: ``EphemeralPostgresError/Code/pgbouncerNotFound`` when
    ///   `pgbouncer` is not installed, ``EphemeralPostgresError/Code/invalidSetting``,
    ///   ``EphemeralPostgresError/Code/startFailed`` (with the pooler's log), ...; nothing is left
    ///   behind when it throws.
    public static func start(
        in server: EphemeralPostgres,
        poolMode: PoolMode,
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "EphemeralPgBouncer")
    ) async throws -> EphemeralPgBouncer {
        let executable = try locateExecutable(searchPath: configuration.searchPath)
        if server.isShutDown {
            throw EphemeralPostgresError(code: .shutDown, message: "the server at \(server.baseDirectory) was shut down; a pooler cannot stand in front of it")
        }
        let owner = try ProcessOwner.forServer(unprivilegedUser: configuration.unprivilegedUser, program: "pgbouncer")
        // Check the settings before anything is made.
        if let port = configuration.port, !(1...65535).contains(port) {
            throw EphemeralPostgresError(code: .invalidSetting, message: "port must be in 1...65535; found \(port)")
        }
        _ = try configuration.iniText(poolMode: poolMode, port: 1, baseDirectory: "/", serverSocketDirectory: server.socketDirectory, serverPort: server.port, user: server.superuser)

        // A port that is free now; if another process takes it first, the pooler says so in its
        // log and we start again on another port.
        var lastError: (any Error)?
        for _ in 0..<(configuration.port == nil ? 5 : 1) {
            let pooler = try makeAndLaunch(server: server, poolMode: poolMode, configuration: configuration, executable: executable, owner: owner, logger: logger)
            do {
                try await pooler.waitUntilServing()
                logger.debug("ephemeral PgBouncer started", metadata: ["port": "\(pooler.port)", "mode": "\(poolMode)", "directory": "\(pooler.baseDirectory)"])
                return pooler
            } catch let error as PortTaken {
                await pooler.shutdown()
                lastError = EphemeralPostgresError(code: .startFailed, message: "pgbouncer could not listen on 127.0.0.1:\(error.port), taken by another process")
            } catch {
                await pooler.shutdown()
                throw error
            }
        }
        throw lastError ?? EphemeralPostgresError(code: .startFailed, message: "pgbouncer did not start")
    }

    /// Starts a pooler, runs `body`, and always shuts the pooler down and removes its folder.
    public static func withPooler<Result>(
        in server: EphemeralPostgres,
        poolMode: PoolMode,
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "EphemeralPgBouncer"),
        isolation: isolated (any Actor)? = #isolation,
        _ body: (EphemeralPgBouncer) async throws -> sending Result
    ) async throws -> sending Result {
        let pooler = try await start(in: server, poolMode: poolMode, configuration: configuration, logger: logger)
        return try await Watchdog.run(body, on: pooler) { await $0.shutdown() }
    }

    /// Kills the pooler (its client and server connections close at once) and deletes its folder.
    /// Safe to call more than once; returns once both are done.
    public func shutdown() async {
        await watchdog.shutdown()
    }

    /// Whether ``shutdown()`` has been called.
    public var isShutDown: Bool { watchdog.isShutDown }

    /// The pooler's process id, read from its pid file, while it runs.
    public var pid: Int32? {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let first = text.split(separator: "\n").first else { return nil }
        return Int32(first.trimmingCharacters(in: .whitespaces))
    }

    /// A `postgresql://` URL for the pooler's TCP port, usable as `DATABASE_URL` or with psql:
    /// `postgresql://postgres@127.0.0.1:<port>/<database>?sslmode=disable`.
    public func url(database: String = "postgres") -> String {
        let encodedUser = user.addingPercentEncoding(withAllowedCharacters: Self.urlSafe) ?? user
        let encodedDatabase = database.addingPercentEncoding(withAllowedCharacters: Self.urlSafe) ?? database
        return "postgresql://\(encodedUser)@\(host):\(port)/\(encodedDatabase)?sslmode=disable"
    }

    /// A `PostgresClient` configuration that connects through the pooler over TCP, without TLS.
    public func clientConfiguration(database: String = "postgres", applicationName: String = "postgres-locks") -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(host: host, port: port, username: user, password: nil, database: database, tls: .disable)
        configuration.options.additionalStartupParameters = [("application_name", applicationName)]
        return configuration
    }

    /// A `PostgresConnection` configuration that connects through the pooler over TCP, without TLS.
    public func connectionConfiguration(database: String = "postgres", applicationName: String = "postgres-locks") -> PostgresConnection.Configuration {
        var configuration = PostgresConnection.Configuration(host: host, port: port, username: user, password: nil, database: database, tls: .disable)
        configuration.options.additionalStartupParameters = [("application_name", applicationName)]
        return configuration
    }

    private static let urlSafe = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")

    // MARK: - Starting

    /// Makes the folder and its files, and starts the watchdog, which starts the pooler.
    private static func makeAndLaunch(
        server: EphemeralPostgres, poolMode: PoolMode, configuration: Configuration, executable: String,
        owner: ProcessOwner?, logger: Logger
    ) throws -> EphemeralPgBouncer {
        var template = Array("\(configuration.temporaryDirectoryParent)/pgbouncer-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw EphemeralPostgresError(code: .fileSystem, message: "could not create a temporary folder under \(configuration.temporaryDirectoryParent): \(String(cString: strerror(errno)))")
        }
        let base = String(cString: created)
        let port: Int
        do {
            port = try configuration.port ?? EphemeralPostgres.freeLoopbackPort()
            let ini = try configuration.iniText(
                poolMode: poolMode, port: port, baseDirectory: base,
                serverSocketDirectory: server.socketDirectory, serverPort: server.port, user: server.superuser
            )
            let quotedUser = server.superuser.replacingOccurrences(of: "\"", with: "\"\"")
            try writeFile(base + "/pgbouncer.ini", ini, owner: owner)
            try writeFile(base + "/userlist.txt", "\"\(quotedUser)\" \"\"\n", owner: owner)
            guard mkdir(base + "/socket", 0o700) == 0 else {
                throw EphemeralPostgresError(code: .fileSystem, message: "could not create \(base)/socket: \(String(cString: strerror(errno)))")
            }
            for path in [base, base + "/socket"] {
                if let owner, chown(path, owner.uid, owner.gid) != 0 {
                    throw EphemeralPostgresError(code: .fileSystem, message: "could not give \(path) to \(configuration.unprivilegedUser): \(String(cString: strerror(errno)))")
                }
            }
        } catch {
            try? FileManager.default.removeItem(atPath: base)
            throw error
        }

        // Dropped with the pooler (or its process), the watchdog kills it and deletes the folder.
        let watchdog: Watchdog
        do {
            watchdog = try Watchdog(
                script: watchdogScript, name: "pgbouncer-watchdog", arguments: [executable, base + "/pgbouncer.ini", base],
                owner: owner, folder: base, environment: ["LC_ALL": "C", "LANG": "C"], logger: logger
            )
        } catch {
            try? FileManager.default.removeItem(atPath: base)
            throw error
        }
        return EphemeralPgBouncer(
            baseDirectory: base, port: port, poolMode: poolMode, configuration: configuration, server: server,
            executable: executable, watchdog: watchdog, logger: logger
        )
    }

    private static func writeFile(_ path: String, _ text: String, owner: ProcessOwner?) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw EphemeralPostgresError(code: .fileSystem, message: "could not write \(path)")
        }
        if let owner, chown(path, owner.uid, owner.gid) != 0 {
            throw EphemeralPostgresError(code: .fileSystem, message: "could not give \(path) to the pooler's user: \(String(cString: strerror(errno)))")
        }
    }

    private struct PortTaken: Error { var port: Int }

    /// Waits until the pooler listens on its port and answers `SELECT 1` through it.
    private func waitUntilServing() async throws {
        let deadline = ContinuousClock.now + configuration.startTimeout
        let listening = "listening on \(Self.loopbackHost):\(port)"
        var lastAttempt: String?
        while true {
            let log = Self.read(logFile) + Self.read(standardErrorFile)
            if log.contains("cannot listen on \(Self.loopbackHost):\(port)") {
                throw PortTaken(port: port)
            }
            if log.contains("FATAL") {
                throw EphemeralPostgresError(code: .startFailed, message: "pgbouncer did not start: \(Self.tail(log))")
            }
            if watchdog.hasEnded {
                throw EphemeralPostgresError(code: .startFailed, message: "the pgbouncer watchdog ended early: \(Self.tail(log))")
            }
            if log.contains(listening) {
                do {
                    let remaining = deadline - ContinuousClock.now
                    try await Self.withDeadline(max(remaining, .milliseconds(100))) { [self] in try await self.answerOneQuery() }
                    return
                } catch {
                    lastAttempt = String(reflecting: error)
                }
            }
            guard ContinuousClock.now < deadline else {
                throw EphemeralPostgresError(
                    code: .startFailed,
                    message: "pgbouncer did not answer a query within \(configuration.startTimeout)\(lastAttempt.map { " (last try: \($0))" } ?? ""): \(Self.tail(Self.read(logFile) + Self.read(standardErrorFile)))"
                )
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Connects through the pooler's TCP port and runs `SELECT 1`.
    private func answerOneQuery() async throws {
        var configuration = connectionConfiguration(database: "postgres", applicationName: "ephemeral-pgbouncer")
        configuration.options.connectTimeout = .seconds(5)
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        do {
            let rows = try await connection.query("SELECT 1", logger: logger).collect()
            guard try rows.first?.decode(Int.self) == 1 else {
                throw EphemeralPostgresError(code: .startFailed, message: "SELECT 1 through pgbouncer did not answer 1")
            }
            try? await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Runs `operation`, throwing if it has not finished within `limit` even if it ignores cancellation.
    private static func withDeadline<T: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let once = ResumeOnce(continuation)
            let work = Task {
                do {
                    let value = try await operation()
                    once.take()?.resume(returning: value)
                } catch {
                    once.take()?.resume(throwing: error)
                }
            }
            Task {
                try? await Task.sleep(for: limit)
                if let pending = once.take() {
                    work.cancel()
                    pending.resume(throwing: EphemeralPostgresError(code: .startFailed, message: "no answer through pgbouncer within \(limit)"))
                }
            }
        }
    }

    private static func read(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    private static func tail(_ text: String) -> String {
        String(text.suffix(2000)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: - The watchdog

    /// The shell script of the watchdog. Arguments: pgbouncer, its configuration file, base folder.
    /// The pooler runs in the foreground as the watchdog's child, so the watchdog knows its process
    /// id and reaps it. It is killed outright: it is throwaway, and its connections close at once.
    static let watchdogScript = #"""
    trap '' INT TERM HUP QUIT PIPE
    "$1" "$2" </dev/null >/dev/null 2>>"$3/pgbouncer.stderr" &
    pid=$!
    cat >/dev/null
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -rf "$3"
    """#
}

/// A continuation resumed at most once.
private final class ResumeOnce<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, any Error>?>
    init(_ continuation: CheckedContinuation<T, any Error>) { self.continuation = Mutex(continuation) }
    func take() -> CheckedContinuation<T, any Error>? { continuation.withLock { $0.take() } }
}
