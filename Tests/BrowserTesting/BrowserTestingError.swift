/// Why a headless browser could not be started, driven or stopped.
public struct BrowserTestingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong: a closed set, so a test can switch over it.
    public enum Code: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// A file-system step failed (temp folder, pipe).
        case fileSystem
        /// `chromedriver` did not start, or no browser session could be created.
        case startFailed
        /// No element matches a CSS selector.
        case noSuchElement
        /// A condition did not hold in time, or the browser did not answer in time.
        case timeout
        /// A script run in the page threw.
        case javascriptError
        /// WebDriver refused or failed a command (the message has WebDriver's error code).
        case webDriver
        /// `chromedriver` answered something that is not a WebDriver answer.
        case invalidResponse
        /// The browser was already shut down.
        case shutDown

        /// The code's readable name.
        public var name: String { rawValue }
        /// The code's readable name.
        public var description: String { rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// A readable explanation with what to do about it.
    public var message: String

    /// Creates an error.
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// `HeadlessBrowser <code>: <message>`.
    public var description: String { "HeadlessBrowser \(code.name): \(message)" }
}
