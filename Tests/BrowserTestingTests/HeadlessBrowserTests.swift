import BrowserTesting
import Foundation
import Hummingbird
import Logging
import Testing

/// Each test starts a live Hummingbird site on 127.0.0.1 and a real headless Chromium; they run
/// one after another (a browser is heavy). When Chromium or chromedriver is not installed,
/// `HeadlessBrowser.start` prints why and the test returns.
@Suite(.serialized)
struct HeadlessBrowserTests {
    @Test
    func theDOMOfAServedPageIsRead() async throws {
        try await withBrowserOnTestSite { browser, site in
            try await browser.open(site + "/")
            #expect(try await browser.title() == "Browser test page")
            #expect(try await browser.currentURL() == site + "/")
            #expect(try await browser.text(of: "#heading") == "Hello from Hummingbird")
            let items = try await browser.elements("li.item")
            #expect(items.count == 3)
            var texts: [String] = []
            for item in items { texts.append(try await browser.text(of: item)) }
            #expect(texts == ["one", "two", "three"])
            #expect(try await browser.elements(".nothing-has-this-class").isEmpty)
            #expect(try await browser.attribute("data-role", of: "#link") == "navigation")
            #expect(try await browser.attribute("data-missing", of: "#link") == nil)
            let source = try await browser.source()
            #expect(source.contains("id=\"heading\""))
            #expect(source.contains("<li class=\"item\">two</li>"))
        }
    }

    @Test
    func clickingSubmitPostsTheFormAndTheNextPageShowsTheResult() async throws {
        try await withBrowserOnTestSite { browser, site in
            try await browser.open(site + "/")
            try await browser.type("Ada & <Bob>", into: "#name")
            try await browser.click("#submit")
            // The form's POST may still be under way when the click returns (it failed once in CI).
            try await browser.waitUntil("location.pathname === '/greet' && document.querySelector('#result') !== null")
            #expect(try await browser.currentURL() == site + "/greet")
            #expect(try await browser.title() == "Greeted")
            #expect(try await browser.text(of: "#method") == "POST")
            #expect(try await browser.text(of: "#result") == "Hello, Ada & <Bob>!")
        }
    }

    @Test
    func waitUntilAwaitsAnElementThatJavaScriptUpdatesLater() async throws {
        try await withBrowserOnTestSite { browser, site in
            try await browser.open(site + "/")
            #expect(try await browser.text(of: "#status") == "idle")
            try await browser.click("#later")
            // The page adds #added and sets "done" 400 ms after the click; until then the
            // condition throws (no #added yet), which counts as not holding.
            try await browser.waitUntil(
                "document.querySelector('#added').dataset.ready === 'yes' && document.querySelector('#status').textContent === 'done'",
                timeout: .seconds(20)
            )
            #expect(try await browser.text(of: "#status") == "done")
            #expect(try await browser.text(of: "#added") == "added by script")
        }
    }

    @Test
    func waitUntilFollowsTheBrowserToThePageItNavigatesTo() async throws {
        try await withBrowserOnTestSite { browser, site in
            try await browser.open(site + "/")
            try await browser.click("#navigate-later")
            // The page goes to /other 300 ms after the click, while the condition is checked.
            try await browser.waitUntil("document.querySelector('#other') !== null", timeout: .seconds(20))
            #expect(try await browser.title() == "Other")
            #expect(try await browser.currentURL() == site + "/other")
        }
    }

    @Test
    func waitUntilThrowsATimeoutNamingAConditionThatNeverHolds() async throws {
        try await withBrowserOnTestSite { browser, site in
            try await browser.open(site + "/")
            let started = ContinuousClock.now
            let error = await #expect(throws: BrowserTestingError.self) {
                try await browser.waitUntil("document.querySelector('#never').textContent === 'x'", timeout: .milliseconds(500))
            }
            #expect(ContinuousClock.now - started >= .milliseconds(500))
            #expect(error?.code == .timeout)
            #expect(error?.message.contains("#never") == true)
            #expect(error?.message.contains("TypeError") == true)
        }
    }

    @Test
    func aMissingElementThrowsAnErrorNamingTheSelector() async throws {
        try await withBrowserOnTestSite { browser, site in
            try await browser.open(site + "/")
            let error = await #expect(throws: BrowserTestingError.self) {
                _ = try await browser.element("#no-such-thing > .really")
            }
            #expect(error?.code == .noSuchElement)
            #expect(error?.message.contains("#no-such-thing > .really") == true)
        }
    }

    @Test
    func executePassesArgumentsAndReturnsTheResultAsJSON() async throws {
        try await withBrowserOnTestSite { browser, site in
            try await browser.open(site + "/")
            #expect(try await browser.execute("return arguments[0] + arguments[1];", arguments: [2, 3], as: Int.self) == 5)
            #expect(try await browser.executeString("return document.title;") == "Browser test page")
            #expect(try await browser.executeString("return undefined;") == nil)
            let heading = try await browser.element("#heading")
            #expect(try await browser.executeString("return arguments[0].id + ':' + arguments[1];", arguments: [heading, "x"]) == "heading:x")
            let json = try await browser.execute("return {a: [1, 'two'], b: null};")
            let object = try JSONSerialization.jsonObject(with: json) as? [String: Any]
            #expect((object?["a"] as? [Any])?.count == 2)
            let error = await #expect(throws: BrowserTestingError.self) {
                _ = try await browser.execute("throw new Error('boom from the page');")
            }
            #expect(error?.code == .javascriptError)
            #expect(error?.message.contains("boom from the page") == true)
        }
    }

    @Test
    func screenshotIsAPNGOfTheWindowSize() async throws {
        try await withBrowserOnTestSite { browser, site in
            try await browser.open(site + "/")
            let png = try await browser.screenshot()
            #expect(png.starts(with: pngSignature))
            #expect(png.count > 2_000)
            // The viewport: the window less the top bar headless Chromium still reserves.
            let viewport = try await browser.execute("return [window.innerWidth, window.innerHeight];", as: [Int].self)
            let size = try #require(pngSize(png))
            #expect([size.width, size.height] == viewport)
            #expect(size.width == browser.configuration.windowWidth)
            #expect(size.height > browser.configuration.windowHeight / 2 && size.height <= browser.configuration.windowHeight)

            let full = try await browser.fullPageScreenshot()
            #expect(full.starts(with: pngSignature))
            #expect((pngSize(full)?.height ?? 0) >= 1_500)  // the page is 1500 px tall

            let path = NSTemporaryDirectory() + "/headless-browser-test-\(UUID().uuidString).png"
            defer { try? FileManager.default.removeItem(atPath: path) }
            try await browser.saveScreenshot(to: path)
            let saved = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            #expect(saved.starts(with: pngSignature))
            #expect(saved.count > 2_000)
        }
    }

    @Test
    func startReturnsNilWhenChromedriverIsNotInstalled() async throws {
        let configuration = HeadlessBrowser.Configuration(chromedriver: "/nonexistent/chromedriver")
        let browser = try await HeadlessBrowser.start(configuration: configuration, logger: logger)
        #expect(browser == nil)
    }

    @Test
    func shutdownLeavesNoChromedriverOrChromiumProcessAndRemovesTheFolder() async throws {
        guard let browser = try await HeadlessBrowser.start(logger: logger) else { return }
        let group = browser.processGroup
        let folder = browser.baseDirectory
        let chromiumPID = try #require(browser.chromiumPID)
        // While it runs: chromedriver leads the group, and Chromium (and its helpers) are in it.
        let running = liveProcesses(inGroup: group)
        #expect(running.contains(browser.chromedriverPID))
        #expect(running.contains(chromiumPID))
        #expect(running.count > 2)
        #expect(FileManager.default.fileExists(atPath: folder))
        // Everything that uses the folder: the group, the watchdog, Chromium's crash handlers
        // (which leave the group).
        let users = liveProcesses(mentioning: folder)
        #expect(users.contains(chromiumPID))

        await browser.shutdown()

        #expect(liveProcesses(inGroup: group).isEmpty)
        #expect(!isAlive(browser.chromedriverPID))
        #expect(!isAlive(chromiumPID))
        #expect(users.filter(isAlive).isEmpty, "still alive: \(users.filter(isAlive))")
        #expect(liveProcesses(mentioning: folder).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: folder))
        #expect(browser.isShutDown)
        let error = await #expect(throws: BrowserTestingError.self) { try await browser.open("about:blank") }
        #expect(error?.code == .shutDown)
        await browser.shutdown()  // a second call is harmless
    }
}

// MARK: - The browser and the site

private let logger: Logger = {
    var logger = Logger(label: "BrowserTestingTests")
    logger.logLevel = .info
    return logger
}()

/// The test site's logger: the site is stopped by cancelling it, which Hummingbird logs as errors.
private let siteLogger: Logger = {
    var logger = Logger(label: "BrowserTestingTests.site")
    logger.logLevel = .critical
    return logger
}()

/// Starts the test site and a browser, runs `body` with the browser and the site's base URL
/// (`http://127.0.0.1:<port>`), then shuts both down. Returns at once when the browser is not
/// installed (`start` printed why).
private func withBrowserOnTestSite(_ body: @Sendable (HeadlessBrowser, String) async throws -> Void) async throws {
    guard let browser = try await HeadlessBrowser.start(logger: logger) else { return }
    do {
        try await withTestSite { port in try await body(browser, "http://127.0.0.1:\(port)") }
    } catch {
        await browser.shutdown()
        throw error
    }
    await browser.shutdown()
}

/// Runs a live Hummingbird app on 127.0.0.1 at a port the system picks, runs `body` with the
/// port, then stops the app.
private func withTestSite(_ body: @Sendable (Int) async throws -> Void) async throws {
    let (ports, portsContinuation) = AsyncStream.makeStream(of: Int.self)
    let app = Application(
        router: testSiteRouter(),
        configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in
            portsContinuation.yield(channel.localAddress?.port ?? 0)
            portsContinuation.finish()
        },
        logger: siteLogger
    )
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        try #require(port > 0)
        do {
            try await body(port)
        } catch {
            group.cancelAll()
            throw error
        }
        group.cancelAll()
    }
}

private struct GreetForm: Decodable {
    var name: String
}

private func testSiteRouter() -> Router<BasicRequestContext> {
    let router = Router()
    router.get("/") { _, _ in HTML(indexPage) }
    router.get("/other") { _, _ in
        HTML(#"<!doctype html><html><head><meta charset="utf-8"><title>Other</title></head><body><p id="other">other page</p></body></html>"#)
    }
    router.post("/greet") { request, context in
        let body = try await request.body.collect(upTo: 65_536)
        let form = try URLEncodedFormDecoder().decode(GreetForm.self, from: String(buffer: body))
        return HTML("""
        <!doctype html>
        <html><head><meta charset="utf-8"><title>Greeted</title></head>
        <body><p id="method">\(request.method)</p><p id="result">Hello, \(escapeHTML(form.name))!</p></body></html>
        """)
    }
    return router
}

private let indexPage = """
<!doctype html>
<html>
<head><meta charset="utf-8"><title>Browser test page</title>
<style>body { font-family: sans-serif; margin: 2em; } #tall { height: 1500px; background: linear-gradient(#fff, #36c); }</style>
</head>
<body>
<div id="tall">
<h1 id="heading">Hello from Hummingbird</h1>
<ul id="items"><li class="item">one</li><li class="item">two</li><li class="item">three</li></ul>
<a id="link" href="/other" data-role="navigation">other</a>
<form id="greet" method="post" action="/greet">
  <label for="name">Name</label> <input id="name" name="name" value="">
  <button id="submit" type="submit">Greet</button>
</form>
<button id="later" type="button">Later</button>
<button id="navigate-later" type="button">Elsewhere, later</button>
<p id="status">idle</p>
</div>
<script>
document.getElementById('later').addEventListener('click', () => {
  document.getElementById('status').textContent = 'working';
  setTimeout(() => {
    const added = document.createElement('p');
    added.id = 'added';
    added.dataset.ready = 'yes';
    added.textContent = 'added by script';
    document.body.prepend(added);
    document.getElementById('status').textContent = 'done';
  }, 400);
});
document.getElementById('navigate-later').addEventListener('click', () => {
  setTimeout(() => { location.href = '/other'; }, 300);
});
</script>
</body>
</html>
"""

private func escapeHTML(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
}

/// An HTML page as a response.
private struct HTML: ResponseGenerator {
    var text: String
    init(_ text: String) { self.text = text }
    func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "text/html; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: text))
        )
    }
}

// MARK: - PNG and processes

private let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

/// Width and height from the PNG's IHDR chunk (which comes first).
private func pngSize(_ png: [UInt8]) -> (width: Int, height: Int)? {
    guard png.count >= 24, Array(png[12..<16]) == Array("IHDR".utf8) else { return nil }
    let number = { (offset: Int) in png[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) } }
    return (number(16), number(20))
}

/// State, parent and process group of `pid` from `/proc/<pid>/stat`.
private func processStatus(_ pid: Int32) -> (state: Character, parent: Int32, group: Int32)? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 2, let state = fields[0].first, let parent = Int32(fields[1]), let group = Int32(fields[2]) else { return nil }
    return (state, parent, group)
}

/// Whether `pid` exists and is not a zombie (a killed process its parent has not reaped yet).
private func isAlive(_ pid: Int32) -> Bool {
    guard let status = processStatus(pid) else { return false }
    return status.state != "Z" && status.state != "X"
}

private func allProcesses() -> [Int32] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init)
}

private func liveProcesses(inGroup group: Int32) -> [Int32] {
    allProcesses().filter { processStatus($0)?.group == group && isAlive($0) }
}

/// Live processes whose command line mentions `text` (such as the browser's folder).
private func liveProcesses(mentioning text: String) -> [Int32] {
    allProcesses().filter { pid in
        guard pid != getpid(), isAlive(pid),
              let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        return String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self).contains(text)
    }
}
