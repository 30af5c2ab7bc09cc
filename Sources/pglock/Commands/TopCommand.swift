import ArgumentParser
import Dispatch
import Foundation
import Logging
import PglockHarness
import PostgresLocks
import PostgresNIO

/// `pglock top`: a live view of lock activity, refreshed like `top`.
struct TopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "A live view of advisory and row-lock holders, waiters and the blocking tree. Quit with q or Ctrl-C."
    )

    @OptionGroup var options: MonitorOptions

    @Option(help: "Time between refreshes (e.g. 1s, 500ms).")
    var interval = "1s"

    @Option(help: ArgumentHelp("Stop after this many refreshes (for scripts and tests).", visibility: .hidden))
    var iterations: Int?

    func run() async throws {
        let interval = try parseDuration(interval)
        guard interval >= .milliseconds(100) else { throw ValidationError("--interval must be at least 100ms") }
        let renderer = options.renderer
        let iterations = self.iterations
        let terminal = Terminal()
        // Ctrl-C: restore the terminal, then leave.
        signal(SIGINT, SIG_IGN)
        let (interrupts, interruptContinuation) = AsyncStream<Void>.makeStream()
        let source = DispatchSource.makeSignalSource(signal: SIGINT)
        source.setEventHandler { interruptContinuation.yield() }
        source.resume()
        defer { source.cancel(); signal(SIGINT, SIG_DFL) }

        terminal.enter()
        defer { terminal.restore() }
        try await options.withClient { client, logger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    var count = 0
                    while iterations.map({ count < $0 }) ?? true {
                        var text: String
                        do {
                            let snapshot = try await client.lockSnapshot(logger: logger)
                            var wide = renderer
                            wide.width = Terminal.isInteractive ? Terminal.columns : 200
                            text = "pglock top — \(ISO8601DateFormatter().string(from: snapshot.takenAt)) — every \(format(interval)) — q to quit\n\n" + wide.render(snapshot)
                        } catch {
                            text = "pglock top: \(error)\n"
                        }
                        if Terminal.isInteractive { terminal.draw(text) } else { print(text) }
                        count += 1
                        try await Task.sleep(for: interval)
                    }
                }
                group.addTask {
                    guard Terminal.isInteractive else {
                        for await _ in interrupts { return }
                        return
                    }
                    await withTaskGroup(of: Void.self) { inputs in
                        inputs.addTask { for await key in Terminal.keys() where key == UInt8(ascii: "q") || key == UInt8(ascii: "Q") { return } }
                        inputs.addTask { for await _ in interrupts { return } }
                        await inputs.next()
                        inputs.cancelAll()
                    }
                }
                // Whichever ends first (the refreshes ran out, q, Ctrl-C) ends the view.
                try await group.next()
                group.cancelAll()
                interruptContinuation.finish()
            }
        }
    }
}
