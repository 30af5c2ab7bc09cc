import Foundation
import Logging

/// Progress lines on standard error, so standard output stays clean for reports and JSON.
struct Progress: Sendable {
    var quiet: Bool

    func step(_ text: String) {
        guard !quiet else { return }
        FileHandle.standardError.write(Data("· \(text)…\n".utf8))
    }

    func done(_ text: String) {
        guard !quiet else { return }
        FileHandle.standardError.write(Data("  \(text)\n".utf8))
    }
}

/// A logger for PostgresNIO's background events (errors only: it warns when a lease is asked
/// for a moment before `run()` has started).
func makeBackgroundLogger() -> Logger {
    var logger = Logger(label: "pglock.background")
    logger.logLevel = .error
    return logger
}

/// A logger for the CLI: warnings and above on standard error, or `--verbose`-style levels via PGLOCK_LOG_LEVEL.
func makeLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = ProcessInfo.processInfo.environment["PGLOCK_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
    return logger
}
