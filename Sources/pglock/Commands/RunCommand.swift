import ArgumentParser
import Foundation
import PostgresLocks
import PostgresNIO
import Subprocess
#if canImport(System)
import System
#else
import SystemPackage
import PglockHarness
#endif

/// `pglock run --lock KEY -- COMMAND…`: like `flock(1)`, across machines.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Hold a session advisory lock while a command runs (like flock(1), across machines).",
        discussion: """
        KEY is an integer (int8 key), NS:ID (two int4 keys), or a name hashed to 64 bits (first 8 \
        bytes of MD5, big-endian, signed), so Python services lock the same names.

        Exit status: the command's own; \(RunCommand.notAcquiredExitCode) when --try or --timeout \
        did not get the lock; \(RunCommand.lockLostExitCode) when the lock was lost while the command \
        ran (the command is terminated); \(RunCommand.sessionUnavailableExitCode) when the URL goes through a \
        transaction-pooling proxy, which cannot hold a session lock (the command is not run); 128+N when \
        the command died of signal N.
        """
    )

    /// Exit status when the lock was not acquired (EX_TEMPFAIL).
    static let notAcquiredExitCode: Int32 = 75
    /// Exit status when the lock was lost while the command ran.
    static let lockLostExitCode: Int32 = 76
    /// Exit status when the connection cannot hold a session lock (a transaction-pooling
    /// proxy is in the way; EX_CONFIG): the command was not run.
    static let sessionUnavailableExitCode: Int32 = 78

    @Option(name: .customLong("lock"), help: "The key: an integer, NS:ID, or a name.")
    var key: String

    @Flag(help: "Take the lock in shared mode.")
    var shared = false

    @Flag(name: .customLong("try"), help: "Do not wait: give up at once if the lock is held.")
    var tryOnly = false

    @Option(help: "Wait at most this long (e.g. 500ms, 5s, 2m).")
    var timeout: String?

    @OptionGroup var database: DatabaseOptions

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (after --).")
    var command: [String] = []

    func validate() throws {
        if tryOnly && timeout != nil { throw ValidationError("--try and --timeout exclude each other") }
        if command.first == "--" && command.count == 1 || command.isEmpty { throw ValidationError("give the command to run after --") }
    }

    func run() async throws {
        let logger = makeLogger("pglock.run")
        let lockKey = try LockKey(text: key)
        let wait: LockWait = tryOnly ? .immediately : try timeout.map { .timeout(try parseDuration($0)) } ?? .forever
        let arguments = command.first == "--" ? Array(command.dropFirst()) : command
        let status: Int32 = try await database.choice.withExplicitClient(maximumConnections: 2, applicationName: "pglock run", purpose: "pglock run locks across machines") { client in
            do {
                return try await client.withSessionAdvisoryLock(lockKey, mode: shared ? .shared : .exclusive, wait: wait, logger: logger) {
                    try await Self.runChild(arguments)
                }
            } catch let error as PostgresLocksError where error.code == .lockTimeout {
                FileHandle.standardError.write(Data("pglock: lock \(lockKey) not acquired: \(error.message)\n".utf8))
                return Self.notAcquiredExitCode
            } catch let error as PostgresLocksError where error.code == .transactionPooling {
                FileHandle.standardError.write(Data("pglock: lock \(lockKey) refused, the command was not run: \(error.message) (\(error.hint ?? ""))\n".utf8))
                return Self.sessionUnavailableExitCode
            } catch let error as PostgresLocksError where error.code == .lockLost {
                FileHandle.standardError.write(Data("pglock: lock \(lockKey) lost while the command ran; it was terminated\n".utf8))
                return Self.lockLostExitCode
            }
        }
        throw ExitCode(status)
    }

    /// Runs the command with this process's standard streams; returns its exit status.
    static func runChild(_ arguments: [String]) async throws -> Int32 {
        let executable: Executable = arguments[0].contains("/") ? .path(FilePath(arguments[0])) : .name(arguments[0])
        var platformOptions = PlatformOptions()
        platformOptions.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: .seconds(5))]
        let result = try await Subprocess.run(
            executable,
            arguments: Arguments(Array(arguments.dropFirst())),
            platformOptions: platformOptions,
            input: .currentStandardInput,
            output: .currentStandardOutput,
            error: .currentStandardError
        )
        switch result.terminationStatus {
        case .exited(let code): return code
        case .signaled(let signal): return 128 + signal
        }
    }
}
