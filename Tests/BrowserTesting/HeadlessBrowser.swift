import AsyncAlgorithms
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EphemeralPostgres
import Foundation
import HummingbirdTesting
import Logging
import NIOCore
import Subprocess
import Synchronization

/// A real headless Chromium driven through WebDriver (`chromedriver`), for tests that look at a
/// web page as a user's browser shows it.
///
/// ```swift
/// guard let browser = try await HeadlessBrowser.start(logger: logger) else { return }  // not installed: skipped
/// try await browser.open("http://127.0.0.1:\(port)/")
/// try await browser.click("button#refresh")
/// try await browser.waitUntil("document.querySelector('#status').textContent === 'ok'")
/// let png = try await browser.screenshot()
/// await browser.shutdown()  // also when the test throws
/// ```
///
/// What it does:
/// - finds `chromium` and `chromedriver` (``locateChromium()``, ``locateChromedriver()``); when
///   either is missing, ``start(configuration:logger:)`` prints why and returns `nil`;
/// - makes a fresh folder under `/tmp` holding chromedriver's log, the browser profile, and the
///   `HOME` and `TMPDIR` of both programs;
/// - starts `chromedriver --port=<free port>` in a session and process group of its own, under a
///   **watchdog** (`/bin/sh`) whose standard input is a pipe that only this process holds open.
///   When this process ends, however it ends (even `SIGKILL`), the pipe closes and the watchdog
///   kills the whole process group (chromedriver, Chromium and all its helper processes) and
///   Chromium's crash handlers (which leave the group; they are found by their crash database
///   in the folder), and deletes the folder. ``shutdown()`` deletes the WebDriver session, closes the pipe and waits
///   for the watchdog and for every process of the group to be gone;
/// - waits until chromedriver's `/status` says it is ready, then creates a WebDriver session
///   with a headless Chromium (`--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage`).
///
/// It talks to chromedriver over HTTP with `HummingbirdTesting.TestClient`, one short connection
/// per command. Commands are meant to be sent one at a time (as a user acts), not concurrently.
public final class HeadlessBrowser: Sendable {
    /// How the browser is started.
    public struct Configuration: Sendable {
        /// The browser window's width in CSS pixels (the width of the viewport and of screenshots).
        public var windowWidth: Int
        /// The browser window's height in CSS pixels. The page's viewport (and so a screenshot)
        /// is smaller by the top bar headless Chromium still reserves: 857 of 1000 px with
        /// Chromium 156; `window.innerHeight` tells.
        public var windowHeight: Int
        /// More Chromium command-line arguments, after the ones this type passes.
        public var extraArguments: [String]
        /// How long chromedriver may take to say it is ready, and Chromium to start.
        public var startTimeout: Duration
        /// How long chromedriver may take to answer one command (a page load included).
        public var commandTimeout: Duration
        /// The Chromium program; `nil` finds it (``HeadlessBrowser/locateChromium()``).
        public var chromium: String?
        /// The chromedriver program; `nil` finds it (``HeadlessBrowser/locateChromedriver()``).
        public var chromedriver: String?
        /// Where the temporary folder is made.
        public var temporaryDirectoryParent: String

        /// Creates a configuration: a 1280×1000 window, 60 s to start, 60 s per command.
        public init(
            windowWidth: Int = 1280,
            windowHeight: Int = 1000,
            extraArguments: [String] = [],
            startTimeout: Duration = .seconds(60),
            commandTimeout: Duration = .seconds(60),
            chromium: String? = nil,
            chromedriver: String? = nil,
            temporaryDirectoryParent: String = "/tmp"
        ) {
            self.windowWidth = windowWidth
            self.windowHeight = windowHeight
            self.extraArguments = extraArguments
            self.startTimeout = startTimeout
            self.commandTimeout = commandTimeout
            self.chromium = chromium
            self.chromedriver = chromedriver
            self.temporaryDirectoryParent = temporaryDirectoryParent
        }
    }

    /// The address chromedriver listens on.
    public static let loopbackHost = "127.0.0.1"

    /// The temporary folder holding everything (chromedriver's log, the profile, `HOME`, `TMPDIR`).
    public let baseDirectory: String
    /// The port chromedriver listens on, on 127.0.0.1.
    public let port: Int
    /// The WebDriver session's identifier.
    public let sessionID: String
    /// chromedriver's process id. chromedriver leads a process group (and session) of its own,
    /// so this is also the group of Chromium and all its helper processes.
    public let chromedriverPID: Int32
    /// The process id of Chromium's main (browser) process, as chromedriver reports it.
    public let chromiumPID: Int32?
    /// The process group of chromedriver, Chromium and its helpers (equal to ``chromedriverPID``).
    public var processGroup: Int32 { chromedriverPID }
    /// The Chromium program in use.
    public let chromium: String
    /// The chromedriver program in use.
    public let chromedriver: String
    /// The configuration it was started with.
    public let configuration: Configuration
    /// chromedriver's log file (its standard output and error).
    public var logFile: String { baseDirectory + "/chromedriver.log" }
    /// The browser profile folder (`--user-data-dir`).
    public var profileDirectory: String { baseDirectory + "/profile" }

    private let watchdog: Watchdog
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var shutDown = false
        var scriptTimeoutMilliseconds = HeadlessBrowser.initialScriptTimeoutMilliseconds
    }

    private static let initialScriptTimeoutMilliseconds = 30_000

    private init(launched: Launched, sessionID: String, chromiumPID: Int32?, chromium: String, configuration: Configuration, logger: Logger) {
        self.baseDirectory = launched.baseDirectory
        self.port = launched.port
        self.watchdog = launched.watchdog
        self.chromedriverPID = launched.pid
        self.chromedriver = launched.executable
        self.sessionID = sessionID
        self.chromiumPID = chromiumPID
        self.chromium = chromium
        self.configuration = configuration
        self.logger = logger
    }

    // MARK: - Starting

    /// The line printed when the browser cannot be started because a program is missing.
    public static let missingProgramsHint = "apt-get install chromium chromium-driver"

    /// Starts chromedriver and a headless Chromium with one WebDriver session.
    ///
    /// - Returns: the browser, or `nil` (after printing one line saying why) when `chromium` or
    ///   `chromedriver` is not installed; that is the only case it returns `nil`.
    /// - Throws: ``BrowserTestingError`` (``BrowserTestingError/Code/startFailed`` with
    ///   chromedriver's log, ``BrowserTestingError/Code/fileSystem``); nothing is left behind
    ///   when it throws.
    public static func start(
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "HeadlessBrowser")
    ) async throws -> HeadlessBrowser? {
        guard let chromedriver = configuration.chromedriver ?? locateChromedriver() else {
            print("HeadlessBrowser skipped: chromedriver not installed (\(missingProgramsHint))")
            return nil
        }
        guard let chromium = configuration.chromium ?? locateChromium() else {
            print("HeadlessBrowser skipped: chromium not installed (\(missingProgramsHint))")
            return nil
        }
        for (name, path) in [("chromedriver", chromedriver), ("chromium", chromium)] where access(path, X_OK) != 0 {
            print("HeadlessBrowser skipped: \(name) at \(path) is not executable (\(missingProgramsHint))")
            return nil
        }

        let started = ContinuousClock.now
        // A port that is free now; if another process takes it first, chromedriver says so and
        // ends, and we start again on another port.
        var lastError: (any Error)?
        for _ in 0..<5 {
            let launched = try Launched.launch(executable: chromedriver, configuration: configuration, logger: logger)
            do {
                try await launched.waitUntilReady(timeout: configuration.startTimeout)
            } catch let error as PortTaken {
                await launched.watchdog.shutdown()
                lastError = BrowserTestingError(code: .startFailed, message: "chromedriver could not listen on 127.0.0.1:\(error.port), taken by another process")
                continue
            } catch {
                await launched.watchdog.shutdown()
                throw error
            }
            do {
                let (sessionID, chromiumPID) = try await launched.createSession(chromium: chromium, configuration: configuration)
                let browser = HeadlessBrowser(
                    launched: launched, sessionID: sessionID, chromiumPID: chromiumPID, chromium: chromium,
                    configuration: configuration, logger: logger
                )
                logger.debug("headless browser started", metadata: [
                    "port": "\(launched.port)", "directory": "\(launched.baseDirectory)",
                    "chromedriver-pid": "\(launched.pid)", "took": "\(ContinuousClock.now - started)",
                ])
                return browser
            } catch {
                let log = tail(ofFile: launched.baseDirectory + "/chromedriver.log")
                await launched.watchdog.shutdown()
                await awaitProcessGroupGone(launched.pid, within: .seconds(10), logger: logger)
                throw BrowserTestingError(code: .startFailed, message: "no browser session could be created: \(error)\(log.isEmpty ? "" : "; chromedriver's log: \(log)")")
            }
        }
        throw lastError ?? BrowserTestingError(code: .startFailed, message: "chromedriver did not start")
    }

    /// The Chromium program: `chromium` or `chromium-browser` on `PATH`, else `/usr/bin/chromium`
    /// (Debian's `chromium` package); `nil` when there is none.
    public static func locateChromium() -> String? {
        locate(["chromium", "chromium-browser"], otherwise: ["/usr/bin/chromium", "/usr/lib/chromium/chromium"])
    }

    /// The chromedriver program: `chromedriver` on `PATH`, else `/usr/bin/chromedriver` (Debian's
    /// `chromium-driver` package); `nil` when there is none.
    public static func locateChromedriver() -> String? {
        locate(["chromedriver"], otherwise: ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])
    }

    private static func locate(_ names: [String], otherwise fallbacks: [String]) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let folders = path.split(separator: ":").map(String.init).filter { !$0.isEmpty }
        for name in names {
            for folder in folders where access(folder + "/" + name, X_OK) == 0 {
                return folder + "/" + name
            }
        }
        return fallbacks.first { access($0, X_OK) == 0 }
    }

    // MARK: - Stopping

    /// Ends the WebDriver session, kills chromedriver, Chromium and its helpers (the whole process
    /// group), and deletes the temporary folder. Returns once the folder is gone and no process
    /// of the group is alive (or 10 s have passed, which is logged). Safe to call more than once.
    public func shutdown() async {
        let first = state.withLock { state -> Bool in
            defer { state.shutDown = true }
            return !state.shutDown
        }
        if first {
            do {
                _ = try await Self.command(port: port, .delete, "/session/\(sessionID)", timeout: .seconds(10), what: "end the session")
            } catch {
                logger.debug("could not end the WebDriver session; killing the browser", metadata: ["error": "\(error)"])
            }
        }
        let crashHandlers = ProcessTable.liveProcesses(commandLineContaining: "--database=\(baseDirectory)/")
        await watchdog.shutdown()
        await Self.awaitProcessGroupGone(chromedriverPID, within: .seconds(10), logger: logger)
        for pid in crashHandlers {
            await ProcessTable.awaitExit(of: pid, within: .seconds(5))
        }
    }

    /// Whether ``shutdown()`` has been called.
    public var isShutDown: Bool { state.withLock { $0.shutDown } }

    // MARK: - Navigating and reading

    /// Loads `url` in the browser and returns once the page has loaded (WebDriver's "normal"
    /// page load strategy: the `load` event has fired).
    public func open(_ url: String) async throws {
        _ = try await sessionCommand(.post, "/url", ["url": url], what: "open \(url)")
    }

    /// The URL of the page shown (after redirects).
    public func currentURL() async throws -> String {
        try Self.string(try await sessionCommand(.get, "/url", what: "read the current URL"), what: "the current URL")
    }

    /// The HTML of the page as the browser has it now (the DOM serialized, scripts' changes included).
    public func source() async throws -> String {
        try Self.string(try await sessionCommand(.get, "/source", what: "read the page source"), what: "the page source")
    }

    /// The page's title (`document.title`).
    public func title() async throws -> String {
        try Self.string(try await sessionCommand(.get, "/title", what: "read the title"), what: "the title")
    }

    /// Every element matching the CSS selector `css`, in document order (none: an empty array).
    public func elements(_ css: String) async throws -> [Element] {
        let value = try await sessionCommand(.post, "/elements", ["using": "css selector", "value": css], what: "find elements matching `\(css)`")
        guard let list = value as? [Any] else {
            throw BrowserTestingError(code: .invalidResponse, message: "finding `\(css)` did not answer a list: \(Self.describe(value))")
        }
        return try list.map { try Self.element(from: $0, selector: css) }
    }

    /// The first element matching the CSS selector `css`.
    ///
    /// - Throws: ``BrowserTestingError/Code/noSuchElement`` naming the selector when none matches.
    public func element(_ css: String) async throws -> Element {
        do {
            let value = try await sessionCommand(.post, "/element", ["using": "css selector", "value": css], what: "find an element matching `\(css)`")
            return try Self.element(from: value, selector: css)
        } catch let error as BrowserTestingError where error.code == .noSuchElement {
            let url = (try? await currentURL()) ?? "the page"
            throw BrowserTestingError(code: .noSuchElement, message: "no element matches the CSS selector `\(css)` on \(url)")
        }
    }

    /// The element's rendered text (`innerText`-like: what a user sees, whitespace collapsed).
    public func text(of element: Element) async throws -> String {
        try Self.string(try await sessionCommand(.get, "/element/\(element.id)/text", what: "read the text of \(element)"), what: "the text of \(element)")
    }

    /// The rendered text of the first element matching `css` (see ``text(of:)-(Element)``).
    /// A page that refreshes itself can replace the element between finding and reading it
    /// ("stale element reference"): then it is found again, a few times at most.
    public func text(of css: String) async throws -> String {
        var attempt = 1
        while true {
            do {
                return try await text(of: try await element(css))
            } catch let error as BrowserTestingError where error.code == .webDriver && error.message.contains("stale element") && attempt < 5 {
                attempt += 1
            }
        }
    }

    /// The element's attribute `name` (or the property of that name, as WebDriver does), `nil`
    /// when it has none.
    public func attribute(_ name: String, of element: Element) async throws -> String? {
        let encoded = name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? name
        let value = try await sessionCommand(.get, "/element/\(element.id)/attribute/\(encoded)", what: "read attribute \(name) of \(element)")
        if value is NSNull { return nil }
        if let text = value as? String { return text }
        return Self.describe(value)
    }

    /// The attribute `name` of the first element matching `css` (see ``attribute(_:of:)-(_,Element)``).
    public func attribute(_ name: String, of css: String) async throws -> String? {
        try await attribute(name, of: try await element(css))
    }

    /// Clicks the element in its center, as a user does (scrolled into view first). A navigation
    /// the click starts (a link, a form's submit button) may not have begun when this returns
    /// (chromedriver waits only for one already under way): await what the next page shows with
    /// ``waitUntil(_:timeout:)``.
    public func click(_ element: Element) async throws {
        _ = try await sessionCommand(.post, "/element/\(element.id)/click", [:], what: "click \(element)")
    }

    /// Clicks the first element matching `css` (see ``click(_:)-(Element)``).
    public func click(_ css: String) async throws {
        try await click(try await element(css))
    }

    /// Types `text` into the element (an input or text area), as keystrokes after its current value.
    public func type(_ text: String, into element: Element) async throws {
        _ = try await sessionCommand(.post, "/element/\(element.id)/value", ["text": text], what: "type into \(element)")
    }

    /// Types `text` into the first element matching `css` (see ``type(_:into:)-(_,Element)``).
    public func type(_ text: String, into css: String) async throws {
        try await type(text, into: try await element(css))
    }

    // MARK: - Scripts

    /// Runs `script` in the page as the body of a function (`return` gives its result) with
    /// `arguments` as `arguments[0]`, `arguments[1]`, …; an ``Element`` argument arrives as the
    /// DOM element. A returned promise is awaited.
    ///
    /// - Returns: the result as JSON (`null` for `undefined`; DOM elements as element references).
    /// - Throws: ``BrowserTestingError/Code/javascriptError`` when the script throws.
    public func execute(_ script: String, arguments: [any Encodable & Sendable] = []) async throws -> Data {
        let encodedArguments = try JSONEncoder().encode(arguments.map(AnyEncodable.init))
        let argumentList = try JSONSerialization.jsonObject(with: encodedArguments, options: [.fragmentsAllowed])
        let value = try await sessionCommand(.post, "/execute/sync", ["script": script, "args": argumentList], what: "run a script")
        return try JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed])
    }

    /// Runs `script` as ``execute(_:arguments:)`` does and decodes its result as `type`.
    public func execute<Value: Decodable>(_ script: String, arguments: [any Encodable & Sendable] = [], as type: Value.Type) async throws -> Value {
        let data = try await execute(script, arguments: arguments)
        do {
            return try JSONDecoder().decode(Value.self, from: data)
        } catch {
            throw BrowserTestingError(code: .invalidResponse, message: "the script's result \(String(decoding: data, as: UTF8.self).prefix(500)) is not a \(Value.self): \(error)")
        }
    }

    /// Runs `script` as ``execute(_:arguments:)`` does and returns its result as text: a string
    /// as it is, `nil` for `null`/`undefined`, anything else as its JSON.
    public func executeString(_ script: String, arguments: [any Encodable & Sendable] = []) async throws -> String? {
        let data = try await execute(script, arguments: arguments)
        let value = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        if value is NSNull { return nil }
        if let text = value as? String { return text }
        return String(decoding: data, as: UTF8.self)
    }

    /// Waits until the JavaScript expression `condition` is truthy in the page.
    ///
    /// The condition is checked in the page: at once, after every change of the DOM
    /// (a `MutationObserver`), and every 50 ms (for conditions on something else); the call
    /// returns as soon as it holds. A condition that throws counts as not holding (so
    /// `document.querySelector('#x').textContent === 'done'` may be used before `#x` exists).
    /// When the page navigates meanwhile, the condition is checked in the new page.
    ///
    /// - Throws: ``BrowserTestingError/Code/timeout`` naming the condition (and what it last
    ///   threw) when it has not held within `timeout`.
    public func waitUntil(_ condition: String, timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + timeout
        let script = Self.waitScript(condition)
        var lastProblem: String?
        while true {
            let remaining = deadline - ContinuousClock.now
            let milliseconds = max(0, Int(remaining / .milliseconds(1)))
            try await ensureScriptTimeout(atLeast: milliseconds + 10_000)
            do {
                let value = try await sessionCommand(
                    .post, "/execute/async", ["script": script, "args": [milliseconds]],
                    timeout: remaining + .seconds(30), what: "wait until `\(condition)`"
                )
                let answer = value as? String ?? ""
                if answer == "holds" { return }
                if answer.hasPrefix("threw: ") { lastProblem = String(answer.dropFirst("threw: ".count)) }
            } catch let error as BrowserTestingError where Self.isNavigation(error) {
                // The page was left while waiting (chromedriver then answers "script timeout"
                // at once, or "document unloaded"); check again in the new one.
                lastProblem = "the page navigated"
            }
            if ContinuousClock.now >= deadline {
                let url = (try? await currentURL()) ?? "the page"
                throw BrowserTestingError(
                    code: .timeout,
                    message: "the condition `\(condition)` did not hold within \(timeout) on \(url)\(lastProblem.map { " (last check: \($0))" } ?? "")"
                )
            }
        }
    }

    private static func waitScript(_ condition: String) -> String {
        // The condition is part of the script's text (not `eval`ed in the page), so a page's
        // Content-Security-Policy does not stop it.
        """
        const timeoutMs = arguments[0];
        const done = arguments[arguments.length - 1];
        const check = () => (
        \(condition)
        );
        const deadline = Date.now() + timeoutMs;
        let finished = false, observer = null, timer = null;
        const finish = (answer) => {
            if (finished) { return; }
            finished = true;
            if (observer) { observer.disconnect(); }
            if (timer !== null) { clearInterval(timer); }
            done(answer);
        };
        const test = () => {
            let holds = false, problem = null;
            try { holds = !!check(); } catch (e) { problem = String(e); }
            if (holds) { finish("holds"); }
            else if (Date.now() >= deadline) { finish(problem === null ? "not yet" : "threw: " + problem); }
        };
        observer = new MutationObserver(test);
        observer.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
        timer = setInterval(test, 50);
        test();
        """
    }

    /// Whether `error` of a waiting script means that the page was left while it waited. Our
    /// script always answers before its own deadline, so a script timeout means it was lost.
    private static func isNavigation(_ error: BrowserTestingError) -> Bool {
        switch error.code {
        case .timeout: error.message.contains("script timeout")
        case .javascriptError, .webDriver: ["unloaded", "execution context", "detached", "navigat"].contains { error.message.contains($0) }
        default: false
        }
    }

    private func ensureScriptTimeout(atLeast milliseconds: Int) async throws {
        guard state.withLock({ $0.scriptTimeoutMilliseconds }) < milliseconds else { return }
        _ = try await sessionCommand(.post, "/timeouts", ["script": milliseconds], what: "set the script timeout")
        state.withLock { $0.scriptTimeoutMilliseconds = max($0.scriptTimeoutMilliseconds, milliseconds) }
    }

    // MARK: - Screenshots

    /// A PNG of the browser window's viewport (``Configuration/windowWidth`` ×
    /// ``Configuration/windowHeight``).
    public func screenshot() async throws -> [UInt8] {
        let value = try await sessionCommand(.get, "/screenshot", what: "take a screenshot")
        return try Self.decodeBase64(value, what: "the screenshot")
    }

    /// A PNG of the whole page, beyond the viewport (through Chromium's DevTools protocol,
    /// `Page.captureScreenshot` with `captureBeyondViewport`).
    public func fullPageScreenshot() async throws -> [UInt8] {
        let size = try await execute(
            """
            const d = document.documentElement, b = document.body;
            return [Math.max(d.scrollWidth, b ? b.scrollWidth : 0), Math.max(d.scrollHeight, b ? b.scrollHeight : 0)];
            """,
            as: [Double].self
        )
        let width = max(1, size.first ?? 1), height = max(1, size.last ?? 1)
        let value = try await sessionCommand(.post, "/goog/cdp/execute", [
            "cmd": "Page.captureScreenshot",
            "params": [
                "format": "png", "captureBeyondViewport": true,
                "clip": ["x": 0, "y": 0, "width": width, "height": height, "scale": 1] as [String: Any],
            ] as [String: Any],
        ], what: "take a full-page screenshot")
        guard let data = (value as? [String: Any])?["data"] else {
            throw BrowserTestingError(code: .invalidResponse, message: "the full-page screenshot answer has no data: \(Self.describe(value).prefix(300))")
        }
        return try Self.decodeBase64(data, what: "the full-page screenshot")
    }

    /// Takes a screenshot (of the viewport, or of the whole page) and writes it to `path` as PNG.
    public func saveScreenshot(to path: String, fullPage: Bool = false) async throws {
        let png = fullPage ? try await fullPageScreenshot() : try await screenshot()
        do {
            try Data(png).write(to: URL(fileURLWithPath: path))
        } catch {
            throw BrowserTestingError(code: .fileSystem, message: "could not write the screenshot to \(path): \(error)")
        }
    }

    private static func decodeBase64(_ value: Any, what: String) throws -> [UInt8] {
        guard let text = value as? String, let data = Data(base64Encoded: text, options: [.ignoreUnknownCharacters]) else {
            throw BrowserTestingError(code: .invalidResponse, message: "\(what) is not base64 text: \(describe(value).prefix(200))")
        }
        return [UInt8](data)
    }

    // MARK: - WebDriver over HTTP

    enum Verb: Sendable { case get, post, delete }

    private func sessionCommand(_ verb: Verb, _ path: String, _ body: [String: Any]? = nil, timeout: Duration? = nil, what: String) async throws -> Any {
        if isShutDown {
            throw BrowserTestingError(code: .shutDown, message: "the browser was shut down; cannot \(what)")
        }
        return try await Self.command(port: port, verb, "/session/\(sessionID)" + path, body, timeout: timeout ?? configuration.commandTimeout, what: what)
    }

    /// Sends one WebDriver command and returns its `value`, throwing WebDriver's error as a
    /// ``BrowserTestingError``.
    static func command(port: Int, _ verb: Verb, _ path: String, _ body: [String: Any]? = nil, timeout: Duration, what: String) async throws -> Any {
        let json: Data?
        switch verb {
        case .get: json = nil
        case .post, .delete: json = try body.map { try JSONSerialization.data(withJSONObject: $0) } ?? (verb == .post ? Data("{}".utf8) : nil)
        }
        let status: Int, answer: Data
        do {
            (status, answer) = try await exchange(port: port, verb, path, json, timeout: timeout)
        } catch TestClient.Error.readTimeout {
            throw BrowserTestingError(code: .timeout, message: "chromedriver did not answer within \(timeout) (to \(what))")
        } catch {
            throw BrowserTestingError(code: .webDriver, message: "could not reach chromedriver at \(loopbackHost):\(port) (to \(what)): \(error)")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: answer, options: [.fragmentsAllowed])) as? [String: Any] else {
            throw BrowserTestingError(code: .invalidResponse, message: "chromedriver answered HTTP \(status) that is not a WebDriver answer (to \(what)): \(String(decoding: answer.prefix(500), as: UTF8.self))")
        }
        let value = object["value"] ?? NSNull()
        if !(200..<300).contains(status) || ((value as? [String: Any])?["error"] is String) {
            let details = value as? [String: Any] ?? [:]
            let error = details["error"] as? String ?? "HTTP \(status)"
            let message = (details["message"] as? String ?? "").split(separator: "\n").first.map(String.init) ?? ""
            let code: BrowserTestingError.Code = switch error {
            case "no such element": .noSuchElement
            case "script timeout", "timeout": .timeout
            case "javascript error": .javascriptError
            case "invalid session id": .shutDown
            default: .webDriver
            }
            throw BrowserTestingError(code: code, message: "could not \(what): \(error)\(message.isEmpty ? "" : ": \(message)")")
        }
        return value
    }

    /// One HTTP request to chromedriver on a connection of its own.
    static func exchange(port: Int, _ verb: Verb, _ path: String, _ json: Data?, timeout: Duration) async throws -> (status: Int, body: Data) {
        let client = TestClient(host: loopbackHost, port: port, configuration: .init(timeout: timeout))
        client.connect()
        let authority = "\(loopbackHost):\(port)"
        let body = json.map { ByteBuffer(bytes: $0) }
        let request = switch verb {
        case .get: TestClient.Request(path, method: .get, authority: authority, headers: [:])
        case .post: TestClient.Request(path, method: .post, authority: authority, headers: [.contentType: "application/json; charset=utf-8"], body: body)
        case .delete: TestClient.Request(path, method: .delete, authority: authority, headers: [:], body: body)
        }
        let response: TestClient.Response
        do {
            response = try await client.execute(request)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try? await client.shutdown()
        var buffer = response.body ?? ByteBuffer()
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        return (Int(response.status.code), Data(bytes))
    }

    private static func element(from value: Any, selector: String) throws -> Element {
        guard let reference = value as? [String: Any], let id = reference[Element.webDriverKey] as? String else {
            throw BrowserTestingError(code: .invalidResponse, message: "not an element reference for `\(selector)`: \(describe(value).prefix(300))")
        }
        return Element(id: id, selector: selector)
    }

    private static func string(_ value: Any, what: String) throws -> String {
        guard let text = value as? String else {
            throw BrowserTestingError(code: .invalidResponse, message: "\(what) is not text: \(describe(value).prefix(300))")
        }
        return text
    }

    static func describe(_ value: Any) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed]) else { return "\(value)" }
        return String(decoding: data, as: UTF8.self)
    }

    static func tail(ofFile path: String) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "" }
        return String(text.suffix(2000)).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// An `Encodable` of any type, to encode a list of script arguments of mixed types.
private struct AnyEncodable: Encodable {
    let value: any Encodable
    init(_ value: any Encodable & Sendable) { self.value = value }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}

/// chromedriver started under its watchdog, before a session exists.
private struct Launched: Sendable {
    var baseDirectory: String
    var port: Int
    var executable: String
    var watchdog: Watchdog
    /// chromedriver's process id (its process group), read from the pid file once written.
    var pid: Int32 { pidBox.value.withLock { $0 } ?? -1 }
    private let pidBox: PidBox

    private final class PidBox: Sendable {
        let value = Mutex<Int32?>(nil)
    }

    /// Makes the folder and starts the watchdog, which starts chromedriver.
    static func launch(executable: String, configuration: HeadlessBrowser.Configuration, logger: Logger) throws -> Launched {
        var template = Array("\(configuration.temporaryDirectoryParent)/headless-browser-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw BrowserTestingError(code: .fileSystem, message: "could not create a temporary folder under \(configuration.temporaryDirectoryParent): \(String(cString: strerror(errno)))")
        }
        let base = String(cString: created)
        let port: Int
        do {
            port = try EphemeralPostgres.freeLoopbackPort()
            for folder in ["home", "home/.config", "home/.cache", "tmp", "profile"] where mkdir(base + "/" + folder, 0o700) != 0 {
                throw BrowserTestingError(code: .fileSystem, message: "could not create \(base)/\(folder): \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(atPath: base)
            throw error
        }
        // Dropped with the browser (or its process), the watchdog kills chromedriver's process
        // group and deletes the folder.
        let watchdog: Watchdog
        do {
            watchdog = try Watchdog(
                script: watchdogScript, name: "chromedriver-watchdog", arguments: [executable, "\(port)", base],
                owner: nil, folder: base,
                environment: [
                    "HOME": base + "/home", "XDG_CONFIG_HOME": base + "/home/.config", "XDG_CACHE_HOME": base + "/home/.cache",
                    "TMPDIR": base + "/tmp", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8",
                ],
                logger: logger
            )
        } catch {
            try? FileManager.default.removeItem(atPath: base)
            throw error
        }
        return Launched(baseDirectory: base, port: port, executable: executable, watchdog: watchdog, pidBox: PidBox())
    }

    private init(baseDirectory: String, port: Int, executable: String, watchdog: Watchdog, pidBox: PidBox) {
        self.baseDirectory = baseDirectory
        self.port = port
        self.executable = executable
        self.watchdog = watchdog
        self.pidBox = pidBox
    }

    /// Waits until chromedriver's `/status` says it is ready for a new session: each attempt
    /// awaits the HTTP answer; only a refused connection is retried after a short delay.
    func waitUntilReady(timeout: Duration) async throws {
        let retryDelay = Duration.milliseconds(25)
        let attempts = max(1, Int(timeout / retryDelay))
        let deadline = ContinuousClock.now + timeout
        var lastAttempt = "no attempt"
        for _ in 0..<attempts {
            if pidBox.value.withLock({ $0 }) == nil, let pid = readPid() {
                pidBox.value.withLock { $0 = pid }
            }
            if watchdog.hasEnded {
                throw BrowserTestingError(code: .startFailed, message: "the chromedriver watchdog ended early: \(HeadlessBrowser.tail(ofFile: logFile))")
            }
            let pid = pidBox.value.withLock { $0 }
            if let pid, !ProcessTable.isAlive(pid) {
                let log = HeadlessBrowser.tail(ofFile: logFile)
                if log.contains("port not available") || log.contains("Address already in use") {
                    throw PortTaken(port: port)
                }
                throw BrowserTestingError(code: .startFailed, message: "chromedriver ended at start: \(log)")
            }
            do {
                let remaining = max(deadline - ContinuousClock.now, .milliseconds(100))
                let value = try await HeadlessBrowser.command(port: port, .get, "/status", timeout: min(remaining, .seconds(10)), what: "ask whether it is ready")
                let ready = (value as? [String: Any])?["ready"]
                if pid != nil, (ready as? Bool) == true || (ready as? NSNumber)?.boolValue == true {
                    return
                }
                lastAttempt = "not ready: \(HeadlessBrowser.describe(value).prefix(300))"
            } catch {
                lastAttempt = "\(error)"
            }
            if ContinuousClock.now >= deadline { break }
            try await nextPoll(after: retryDelay)
        }
        throw BrowserTestingError(code: .startFailed, message: "chromedriver was not ready within \(timeout) (last try: \(lastAttempt)): \(HeadlessBrowser.tail(ofFile: logFile))")
    }

    /// Creates the WebDriver session, which starts Chromium; returns its id and Chromium's pid.
    func createSession(chromium: String, configuration: HeadlessBrowser.Configuration) async throws -> (String, Int32?) {
        let arguments = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=\(configuration.windowWidth),\(configuration.windowHeight)",
            "--user-data-dir=\(baseDirectory)/profile",
            "--disable-crash-reporter", "--disable-breakpad", "--no-first-run", "--no-default-browser-check",
        ] + configuration.extraArguments
        let capabilities: [String: Any] = [
            "capabilities": [
                "alwaysMatch": [
                    "goog:chromeOptions": ["binary": chromium, "args": arguments] as [String: Any],
                    "timeouts": ["script": 30_000, "pageLoad": Int(configuration.commandTimeout / .milliseconds(1))],
                    "unhandledPromptBehavior": "dismiss and notify",
                ] as [String: Any],
            ],
        ]
        let value = try await HeadlessBrowser.command(
            port: port, .post, "/session", capabilities, timeout: configuration.startTimeout, what: "create a session"
        )
        guard let answer = value as? [String: Any], let sessionID = answer["sessionId"] as? String else {
            throw BrowserTestingError(code: .invalidResponse, message: "the new session has no id: \(HeadlessBrowser.describe(value).prefix(500))")
        }
        let processID = ((answer["capabilities"] as? [String: Any])?["goog:processID"] as? NSNumber)?.int32Value
            ?? ((answer["capabilities"] as? [String: Any])?["goog:processID"] as? Int).map(Int32.init)
        return (sessionID, processID)
    }

    var logFile: String { baseDirectory + "/chromedriver.log" }

    private func readPid() -> Int32? {
        guard let text = try? String(contentsOfFile: baseDirectory + "/chromedriver.pid", encoding: .utf8),
              text.hasSuffix("\n") else { return nil }
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The watchdog's script. Arguments: chromedriver, its port, the base folder. `setsid` makes
    /// chromedriver the leader of a new session and process group (it does not fork: a
    /// background job of a shell without job control is not a group leader), which Chromium and
    /// its helpers join; the group is killed outright. Chromium's crash handlers
    /// (`chrome_crashpad_handler`, which `--disable-crashpad-for-testing` would stop, but page
    /// loads then hang) leave the group: they are found by their crash database, which is in
    /// the folder (`HOME` is there), and killed with it.
    static let watchdogScript = #"""
    trap '' INT TERM HUP QUIT PIPE
    setsid "$1" --port="$2" </dev/null >>"$3/chromedriver.log" 2>&1 &
    pid=$!
    echo "$pid" > "$3/chromedriver.pid"
    cat >/dev/null
    handlers=$(grep -laF -- "--database=$3/" /proc/[0-9]*/cmdline 2>/dev/null | sed -n 's|^/proc/\([0-9]*\)/cmdline$|\1|p')
    kill -9 "-$pid" $handlers 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -rf "$3"
    """#
}

private struct PortTaken: Error { var port: Int }

extension HeadlessBrowser {
    /// Waits (at most `limit`) until no process of `group` is alive; logs the ones that are.
    static func awaitProcessGroupGone(_ group: Int32, within limit: Duration, logger: Logger) async {
        guard group > 0 else { return }
        let deadline = ContinuousClock.now + limit
        for pid in ProcessTable.liveMembers(ofGroup: group) {
            await ProcessTable.awaitExit(of: pid, within: deadline - ContinuousClock.now)
        }
        let left = ProcessTable.liveMembers(ofGroup: group)
        if !left.isEmpty {
            logger.error("processes of the browser's group are still alive", metadata: ["group": "\(group)", "pids": "\(left)"])
        }
    }
}

/// Reading `/proc`.
enum ProcessTable {
    /// The state letter and process group of `pid` (from `/proc/<pid>/stat`), `nil` when gone.
    static func status(of pid: Int32) -> (state: Character, group: Int32)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 2, let state = fields[0].first, let group = Int32(fields[2]) else { return nil }
        return (state, group)
    }

    /// Whether `pid` runs (exists and is not a zombie).
    static func isAlive(_ pid: Int32) -> Bool {
        guard let status = status(of: pid) else { return false }
        return status.state != "Z" && status.state != "X"
    }

    /// The processes of process group `group` that are alive (not zombies).
    static func liveMembers(ofGroup group: Int32) -> [Int32] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap(Int32.init).filter { pid in
            guard let status = status(of: pid) else { return false }
            return status.group == group && status.state != "Z" && status.state != "X"
        }
    }

    /// The processes that are alive and whose command line contains `text`.
    static func liveProcesses(commandLineContaining text: String) -> [Int32] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap(Int32.init).filter { pid in
            guard pid != getpid(), isAlive(pid),
                  let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self).contains(text)
        }
    }

    /// Waits until `pid` has ended (at most `limit`): with a pidfd (`pidfd_open(2)`) polled on a
    /// dispatch thread, or, where there is none, by looking every 10 ms.
    static func awaitExit(of pid: Int32, within limit: Duration) async {
        guard limit > .zero, isAlive(pid) else { return }
        if let pidfdOpen = pidfdOpenFunction() {
            let fd = pidfdOpen(pid, 0)
            if fd < 0 { return }  // gone already (ESRCH)
            let milliseconds = Int32(clamping: max(1, Int(limit / .milliseconds(1))))
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().async {
                    var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    _ = poll(&entry, 1, milliseconds)
                    close(fd)
                    continuation.resume()
                }
            }
            return
        }
        let deadline = ContinuousClock.now + limit
        while isAlive(pid), ContinuousClock.now < deadline {
            try? await nextPoll(after: .milliseconds(10))
        }
    }

    private typealias PidfdOpen = @convention(c) (Int32, UInt32) -> Int32

    /// glibc's `pidfd_open` (2.36 and later), looked up at run time so that older systems link.
    private static func pidfdOpenFunction() -> PidfdOpen? {
        guard let symbol = dlsym(nil, "pidfd_open") else { return nil }
        return unsafeBitCast(symbol, to: PidfdOpen.self)
    }
}

/// Waits for the next tick of a timer: the pace of a poll of something that announces
/// nothing (a process starting or ending), as the tests' `waitUntil` polls a condition.
func nextPoll(after interval: Duration) async throws {
    for await _ in AsyncTimerSequence(interval: interval, clock: ContinuousClock()) { break }
    try Task.checkCancellation()
}
