#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging
import PostgresNIO
import Subprocess
import Synchronization
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// A throwaway local PostgreSQL server for tests, demos and benchmarks.
///
/// ```swift
/// let server = try await EphemeralPostgres.start()
/// defer { Task { await server.shutdown() } }
/// let client = PostgresClient(configuration: server.clientConfiguration(), backgroundLogger: logger)
/// ```
///
/// Or scoped, so the server is always removed:
///
/// ```swift
/// try await EphemeralPostgres.withServer { server in ... }
/// ```
///
/// What it does:
/// - finds `initdb`, `pg_ctl` and `postgres` (``PostgresBinaries``);
/// - runs `initdb` into a fresh folder under `/tmp`, with every setting written explicitly,
///   a free TCP port on 127.0.0.1 and a private Unix-socket folder;
/// - as root, runs `initdb` and the server as an unprivileged user (`postgres`), because
///   `initdb` refuses to run as root, and gives that user the folder;
/// - starts a small **watchdog** process (`/bin/sh`) whose standard input is a pipe that only
///   this process holds open. When this process ends, however it ends (normal exit, Ctrl-C,
///   `SIGTERM`, even `SIGKILL`), the pipe closes and the watchdog stops the server and deletes the
///   folder. ``shutdown()`` closes the pipe and waits for the watchdog, so there is one cleanup
///   path for every case.
public final class EphemeralPostgres: Sendable {
    /// The temporary folder holding everything (data, socket, log).
    public let baseDirectory: String
    /// The data directory (`PGDATA`).
    public var dataDirectory: String { baseDirectory + "/data" }
    /// The folder holding the Unix socket `.s.PGSQL.<port>`.
    public var socketDirectory: String { baseDirectory + "/socket" }
    /// The server's log file.
    public var logFile: String { baseDirectory + "/server.log" }
    /// The port (TCP on 127.0.0.1 if enabled, and the socket file's number).
    public var port: Int { portBox.withLock { $0 } }
    private let portBox: Mutex<Int>
    /// The superuser role to connect as.
    public let superuser: String
    /// The programs in use.
    public let binaries: PostgresBinaries
    /// The configuration it was started with.
    public let configuration: Configuration

    private let owner: ProcessOwner?
    private let watchdog: Watchdog
    private let logger: Logger

    private init(
        baseDirectory: String, port: Int, configuration: Configuration, binaries: PostgresBinaries,
        owner: ProcessOwner?, watchdog: Watchdog, logger: Logger
    ) {
        self.baseDirectory = baseDirectory
        self.portBox = Mutex(port)
        self.superuser = configuration.superuser
        self.configuration = configuration
        self.binaries = binaries
        self.owner = owner
        self.watchdog = watchdog
        self.logger = logger
    }

    /// Creates, configures and starts a throwaway server.
    ///
    /// - Throws: ``EphemeralPostgresError`` (binaries missing, user missing, initdb or start failed);
    ///   nothing is left behind when it throws.
    public static func start(
        _ configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "EphemeralPostgres")
    ) async throws -> EphemeralPostgres {
        try configuration.tls?.validate()
        let binaries = try PostgresBinaries.locate(searchPath: configuration.searchPath)
        let owner = try ProcessOwner.forServer(unprivilegedUser: configuration.unprivilegedUser)

        // The folder: private, owned by whoever runs the server.
        var template = Array("\(configuration.temporaryDirectoryParent)/pglocks-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw EphemeralPostgresError(code: .fileSystem, message: "could not create a temporary folder under \(configuration.temporaryDirectoryParent): \(String(cString: strerror(errno)))")
        }
        let base = String(cString: created)
        if let owner {
            guard chown(base, owner.uid, owner.gid) == 0 else {
                let reason = String(cString: strerror(errno))
                rmdir(base)
                throw EphemeralPostgresError(code: .fileSystem, message: "could not give \(base) to \(configuration.unprivilegedUser): \(reason)")
            }
        }

        // Dropped with the server (or its process), the watchdog stops it and deletes the folder.
        let watchdog: Watchdog
        do {
            watchdog = try Watchdog(
                script: watchdogScript, name: "pglocks-watchdog", arguments: [binaries.pgCtl, base + "/data", base],
                owner: owner, folder: base, logger: logger
            )
        } catch {
            rmdir(base)
            throw error
        }

        let server = EphemeralPostgres(
            baseDirectory: base, port: 0, configuration: configuration, binaries: binaries,
            owner: owner, watchdog: watchdog, logger: logger
        )
        do {
            return try await server.initializeAndStart()
        } catch {
            await server.shutdown()
            throw error
        }
    }

    /// Starts a server, runs `body`, and always shuts the server down and removes its folder.
    public static func withServer<Result>(
        _ configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "EphemeralPostgres"),
        isolation: isolated (any Actor)? = #isolation,
        _ body: (EphemeralPostgres) async throws -> sending Result
    ) async throws -> sending Result {
        try await Watchdog.run(body, on: try await start(configuration, logger: logger)) { await $0.shutdown() }
    }

    /// Runs initdb, writes the configuration, picks a port and starts the server.
    private func initializeAndStart() async throws -> EphemeralPostgres {
        let initdb = try await run(binaries.initdb, [
            "-D", dataDirectory, "-U", configuration.superuser, "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync", "--no-instructions",
        ])
        guard initdb.success else {
            throw EphemeralPostgresError(code: .initdbFailed, message: "initdb failed (\(initdb.status)): \(initdb.errorTail)")
        }
        guard mkdir(socketDirectory, 0o700) == 0, owner.map({ chown(socketDirectory, $0.uid, $0.gid) == 0 }) ?? true else {
            throw EphemeralPostgresError(code: .fileSystem, message: "could not create the socket folder \(socketDirectory)")
        }
        try await prepareTLS()
        try writeHostAuthentication()

        // A port that is free now; if another process takes it first, start fails and we retry.
        var lastError: (any Error)?
        for _ in 0..<5 {
            let port = try Self.freeLoopbackPort()
            portBox.withLock { $0 = port }
            do {
                try writeConfiguration()
                try await startServer()
                return self
            } catch {
                lastError = error
            }
        }
        throw lastError ?? EphemeralPostgresError(code: .startFailed, message: "the server did not start")
    }

    private func writeConfiguration() throws {
        let lines = try configuration.configurationLines(port: port, socketDirectory: socketDirectory)
        let path = dataDirectory + "/postgresql.conf"
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw EphemeralPostgresError(code: .fileSystem, message: "could not open \(path)")
        }
        defer { try? handle.close() }
        try handle.seekToEnd()
        // Later lines win in postgresql.conf, so rewriting on a retry with another port is fine.
        try handle.write(contentsOf: Data(("\n# written by EphemeralPostgres\n" + lines.joined(separator: "\n") + "\n").utf8))
    }

    /// Starts the server on the existing data directory (after ``stopServer()``), waiting until it accepts connections.
    public func startServer() async throws {
        try ensureNotShutDown()
        let result = try await run(binaries.pgCtl, [
            "start", "-w", "-t", "\(configuration.startTimeoutSeconds)", "-D", dataDirectory, "-l", logFile,
        ])
        guard result.success else {
            throw EphemeralPostgresError(code: .startFailed, message: "pg_ctl start failed (\(result.status)): \(result.errorTail) \(Self.tail(ofFile: logFile))")
        }
        logger.debug("ephemeral PostgreSQL started", metadata: ["port": "\(port)", "directory": "\(baseDirectory)"])
    }

    /// Stops the server and keeps its data directory, so ``startServer()`` can start it again
    /// (to test what clients do across a restart).
    public func stopServer(immediate: Bool = false) async throws {
        try ensureNotShutDown()
        let result = try await run(binaries.pgCtl, ["stop", "-w", "-t", "\(configuration.startTimeoutSeconds)", "-D", dataDirectory, "-m", immediate ? "immediate" : "fast"])
        guard result.success else {
            throw EphemeralPostgresError(code: .stopFailed, message: "pg_ctl stop failed (\(result.status)): \(result.errorTail)")
        }
    }

    /// Stops the server and deletes its folder. Safe to call more than once; returns once both are done.
    public func shutdown() async {
        await watchdog.shutdown()
    }

    /// Whether ``shutdown()`` has been called.
    public var isShutDown: Bool { watchdog.isShutDown }

    /// The postmaster's process id, read from `postmaster.pid`, if the server is running.
    public var postmasterPID: Int32? {
        guard let text = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8),
              let first = text.split(separator: "\n").first else { return nil }
        return Int32(first.trimmingCharacters(in: .whitespaces))
    }

    /// A `postgresql://` URL for the Unix socket, usable as `DATABASE_URL` or with psql.
    public func url(database: String = "postgres") -> String {
        "postgresql://\(superuser)@/\(database)?host=\(socketDirectory)&port=\(port)"
    }

    /// A `PostgresClient` configuration that connects over the Unix socket as the superuser.
    public func clientConfiguration(database: String = "postgres", applicationName: String = "postgres-locks") -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: superuser, password: nil, database: database
        )
        configuration.options.additionalStartupParameters = [("application_name", applicationName)]
        return configuration
    }

    private func ensureNotShutDown() throws {
        if isShutDown {
            throw EphemeralPostgresError(code: .shutDown, message: "the server at \(baseDirectory) was shut down")
        }
    }

    // MARK: - Processes

    /// The shell script of the watchdog. Arguments: pg_ctl, data directory, base folder.
    static let watchdogScript = #"""
    trap '' INT TERM HUP QUIT PIPE
    cat >/dev/null
    "$1" stop -D "$2" -m immediate -w -t 30 >/dev/null 2>&1
    if [ -f "$2/postmaster.pid" ]; then
      pid=$(head -n 1 "$2/postmaster.pid")
      case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
        *postgres*) kill -9 "$pid" 2>/dev/null ;;
      esac
    fi
    rm -rf "$3"
    """#

    struct ProcessResult {
        var status: TerminationStatus
        var standardError: String
        var success: Bool { status.isSuccess }
        var errorTail: String { String(standardError.suffix(2000)).trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    /// Runs a program as the server's owner in the base folder.
    func run(_ executable: String, _ arguments: [String]) async throws -> ProcessResult {
        let command = ProcessOwner.command(owner, executable, arguments)
        let result = try await Subprocess.run(
            .path(FilePath(command.executable)),
            arguments: Arguments(command.arguments),
            environment: .inherit.updating(["LC_ALL": "C", "LANG": "C", "PGDATA": nil, "PGPORT": nil, "PGHOST": nil]),
            workingDirectory: FilePath(baseDirectory),
            output: .discarded,
            error: .string(limit: 1 << 20)
        )
        return ProcessResult(status: result.terminationStatus, standardError: result.standardError)
    }

    static func tail(ofFile path: String) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "" }
        return String(text.suffix(2000)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A TCP port on 127.0.0.1 that nothing listens on at the moment of the call (bound to
    /// port 0, read back, closed): for a server or pooler to listen on, or for a client to be
    /// refused on.
    ///
    /// - Throws: ``EphemeralPostgresError`` when no socket can be bound.
    public static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw EphemeralPostgresError(code: .fileSystem, message: "socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw -> Bool in
                bind(fd, raw, length) == 0 && getsockname(fd, raw, &length) == 0
            }
        }
        guard bound else { throw EphemeralPostgresError(code: .fileSystem, message: "could not find a free port on 127.0.0.1") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// The unprivileged user that runs the server when this process is root.
package struct ProcessOwner: Sendable, Hashable {
    var uid: uid_t
    var gid: gid_t

    /// The unprivileged user that runs `program` when this process is root (initdb, the server
    /// and pgbouncer all refuse root); `nil` when not root (it runs as the current user).
    static func forServer(unprivilegedUser: String, program: String = "the server") throws -> ProcessOwner? {
        guard geteuid() == 0 else { return nil }
        guard let entry = getpwnam(unprivilegedUser) else {
            throw EphemeralPostgresError(
                code: .unprivilegedUserMissing,
                message: "running as root, and \(program) refuses root; the user '\(unprivilegedUser)' to run it as does not exist. Install the postgresql package (it creates the user), or create it: `useradd --system --user-group \(unprivilegedUser)`."
            )
        }
        guard access(setpriv, X_OK) == 0 else {
            throw EphemeralPostgresError(
                code: .unprivilegedUserMissing,
                message: "running as root, \(program) must run as '\(unprivilegedUser)', which needs \(setpriv): install util-linux (`apt-get install util-linux`)"
            )
        }
        return ProcessOwner(uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
    }

    /// `setpriv(1)` (util-linux), which every Debian system has.
    static let setpriv = "/usr/bin/setpriv"

    /// The command line that runs `executable` as this owner: through `setpriv`, so the child
    /// is started with `posix_spawn`. (Asking swift-subprocess for another user ID makes it
    /// `fork()` this multi-threaded process and switch user in the child, which can deadlock
    /// in the child before `exec`: seen here as test runs hanging forever.)
    static func command(_ owner: ProcessOwner?, _ executable: String, _ arguments: [String]) -> (executable: String, arguments: [String]) {
        guard let owner else { return (executable, arguments) }
        return (setpriv, ["--reuid=\(owner.uid)", "--regid=\(owner.gid)", "--clear-groups", "--", executable] + arguments)
    }
}
