import Foundation
import Logging
import Subprocess
import Synchronization
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// A small `/bin/sh` process that cleans up after a throwaway server or pooler, however this
/// process ends.
///
/// Its standard input is a pipe (the *lifeline*) whose write end only this process holds
/// (close-on-exec, so no child inherits it). When this process ends, even by `SIGKILL`, the pipe
/// closes, the script's `cat` returns, and the rest of the script stops what it watches and
/// deletes its folder. ``shutdown()`` closes the pipe itself and waits for the script, so there
/// is one cleanup path for every case.
package final class Watchdog: Sendable {
    private let lifeline: Mutex<Int32?>
    private let process: Task<Void, Never>
    private let ended = Ended()

    /// Set when the script has ended.
    private final class Ended: Sendable {
        let value = Atomic<Bool>(false)
    }

    /// Starts `script` (run with `arguments` as `$1`, `$2`, …, as `owner` when given) with the
    /// lifeline as its standard input. If the script cannot be started, `folder` is removed
    /// directly.
    ///
    /// - Throws: ``EphemeralPostgresError/Code/fileSystem`` when the pipe cannot be made.
    package init(
        script: String, name: String, arguments: [String], owner: ProcessOwner?, folder: String,
        environment: [Environment.Key: String] = [:], logger: Logger
    ) throws {
        var fds: [Int32] = [0, 0]
        guard systemPipe2(&fds, O_CLOEXEC) == 0 else {
            throw EphemeralPostgresError(code: .fileSystem, message: "could not create the watchdog pipe: \(String(cString: strerror(errno)))")
        }
        let readEnd = fds[0]
        lifeline = Mutex(fds[1])
        let command = ProcessOwner.command(owner, "/bin/sh", ["-c", script, name] + arguments)
        process = Task.detached { [ended] in
            defer { ended.value.store(true, ordering: .releasing) }
            do {
                _ = try await Subprocess.run(
                    .path(FilePath(command.executable)),
                    arguments: Arguments(command.arguments),
                    environment: .inherit.updating(environment),
                    workingDirectory: FilePath(folder),
                    input: .fileDescriptor(FileDescriptor(rawValue: readEnd), closeAfterSpawningProcess: true),
                    output: .discarded,
                    error: .discarded
                )
            } catch {
                logger.error("\(name) failed to start; removing the folder directly", metadata: ["error": "\(error)"])
                try? FileManager.default.removeItem(atPath: folder)
            }
        }
    }

    deinit {
        // Closing the lifeline makes the script clean up.
        if let fd = lifeline.withLock({ $0 }) { close(fd) }
    }

    /// Closes the lifeline and waits until the script has cleaned up. Safe to call more than once.
    package func shutdown() async {
        if let fd = lifeline.withLock({ fd -> Int32? in defer { fd = nil }; return fd }) {
            close(fd)
        }
        await process.value
    }

    /// Whether ``shutdown()`` has been called.
    package var isShutDown: Bool { lifeline.withLock { $0 == nil } }

    /// Whether the script has ended (it should not, before ``shutdown()``).
    package var hasEnded: Bool { ended.value.load(ordering: .acquiring) }

    /// Runs `body` with `started` (a server or pooler), then shuts it down whether `body`
    /// returned or threw.
    static func run<Started: Sendable, Result>(
        _ body: (Started) async throws -> sending Result,
        on started: Started,
        isolation: isolated (any Actor)? = #isolation,
        shutdown: (Started) async -> Void
    ) async throws -> sending Result {
        let result: Result
        do {
            result = try await body(started)
        } catch {
            await shutdown(started)
            throw error
        }
        await shutdown(started)
        return result
    }
}

/// `pipe2(2)`, which Glibc's Swift overlay does not export (it needs `_GNU_SOURCE`): both ends are
/// created close-on-exec atomically, so no concurrently spawned child can inherit the lifeline.
@_silgen_name("pipe2")
func systemPipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32
