import BrowserTesting
import Foundation
import Hummingbird
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresLocksWeb
import PostgresNIO
import PostgresQueue
import ServiceLifecycle
import Testing

/// The console in a real headless Chromium, used as an operator would: against a live scenario
/// (a lock held with two sessions queued behind it, a queue with a job in each state and a
/// worker), read the pages, retry a dead job, pause a queue and see the worker stop claiming.
///
/// Screenshots of each page go to `$PGLOCK_SCREENSHOTS` when set (the README's and the
/// article's come from there), else to a temporary folder.
@Suite("Web console in a real browser", .serialized)
struct ConsoleBrowserTests {
    struct Invoice: Codable, Sendable { var invoice: Int }

    @Test func anOperatorSeesTheBlockerRetriesADeadJobAndPausesAQueueThatAWorkerThenLeavesAlone() async throws {
        guard let browser = try await HeadlessBrowser.start(logger: quietLogger) else {
            // Skipped where Chromium cannot be installed; CI installs it, so there it is a failure.
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("Chromium and chromedriver must be installed in CI (.ci/run installs them)") }
            return
        }
        do {
            try await run(browser)
        } catch {
            await browser.shutdown()
            throw error
        }
        await browser.shutdown()
    }

    func run(_ browser: HeadlessBrowser) async throws {
        let shots = ProcessInfo.processInfo.environment["PGLOCK_SCREENSHOTS"].flatMap { $0.isEmpty ? nil : $0 }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("pglock-web-screenshots").path
        try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)
        try await TestDatabase.withDatabase { db in
            let scenario = try await ConsoleScenario.jobs(on: db)
            let dead = try #require(scenario.jobs[.dead])
            let election = try LeaderElection(configuration: .init(name: "invoice-scheduler", connection: db.settings), logger: quietLogger)
            try await withRunningServices([election], logger: quietLogger) {
                try await waitUntil("the election has a leader") {
                    try await LeaderTerm.all(on: db.client, logger: db.logger).first?.lockHolderPID != nil
                }
                try await withBlockedSessions(db) { pids in
                    try await withLiveConsole(db) { site in
                        // Locks: the holder is the one root blocker, with both waiters behind it.
                        try await browser.open(site + "/locks")
                        #expect(try await browser.text(of: "#root-blockers") == "1")
                        #expect(try await browser.attribute("data-pid", of: "tr.root-blocker") == String(pids[0]))
                        #expect(try await browser.text(of: "tr.root-blocker td.waiter-count") == "2")
                        #expect(try await browser.elements("svg.graph g.session").count == 3)
                        #expect(try await browser.elements("svg.graph g.session.root").count == 1)
                        #expect(try await browser.source().contains("advisory \(ConsoleScenario.lockName)"))
                        try await browser.saveScreenshot(to: shots + "/console-locks.png", fullPage: true)
                        // The page refreshes itself.
                        try await browser.waitUntil("document.body.dataset.refreshed !== undefined", timeout: .seconds(20))
                        #expect(try await browser.text(of: "#root-blockers") == "1")
                        // Refreshing off for the clicks that follow (a refresh replaces the buttons;
                        // the choice is kept for the browser session, as an operator's would be).
                        try await browser.click("#auto-refresh")

                        // Queues: one job in each state.
                        try await browser.open(site + "/queues")
                        for state in ["available", "running", "dead", "cancelled", "completed"] {
                            #expect(try await browser.text(of: "tr.queue[data-queue='billing'] td.state-\(state)") == "1", "one \(state) job")
                        }
                        #expect(try await browser.elements("figure.chart svg").count == 3)
                        try await browser.saveScreenshot(to: shots + "/console-queues.png", fullPage: true)

                        // The dead job: its payload and error hold <script>, shown as text, never run.
                        try await browser.open(site + "/jobs?state=dead")
                        try await browser.saveScreenshot(to: shots + "/console-jobs.png", fullPage: true)
                        try await browser.open(site + "/jobs/\(dead)")
                        #expect(try await browser.text(of: "#last-error").contains("<script>window.pwnedError = 1</script>"))
                        #expect(try await browser.text(of: "#payload").contains("<script>window.pwned = 1"))
                        #expect(try await browser.execute("return [window.pwned, window.pwnedError, window.pwnedImage].every(v => v === undefined)", as: Bool.self))
                        #expect(try await browser.elements("#last-error script, #payload script, #last-error img").isEmpty)
                        try await browser.saveScreenshot(to: shots + "/console-job.png", fullPage: true)

                        // Retry it: confirm, then see it available.
                        try await browser.click("button[data-action='retry']")
                        try await browser.waitUntil("document.querySelector('#confirm') !== null")
                        #expect(try await browser.text(of: ".question").contains("Make job \(dead) available again"))
                        try await browser.click("#confirm")
                        try await browser.waitUntil("document.querySelector('#notice') !== null && document.querySelector('#job-state') !== null")
                        #expect(try await browser.text(of: "#job-state") == "available")
                        #expect(try await browser.text(of: "#notice").contains("Retry: done."))
                        #expect(try await scenario.queue.job(id: dead, on: db.client, logger: db.logger)?.state == "available")

                        // Leaders and the doctor.
                        try await browser.open(site + "/leaders")
                        #expect(try await browser.attribute("data-election", of: "tr.election") == "invoice-scheduler")
                        try await browser.saveScreenshot(to: shots + "/console-leaders.png", fullPage: true)
                        try await browser.open(site + "/doctor")
                        #expect(try await !browser.elements("tr.verdict").isEmpty)
                        try await browser.saveScreenshot(to: shots + "/console-doctor.png", fullPage: true)

                        // A worker runs the available jobs; pause the queue, then new jobs wait until it is resumed.
                        let ran = LockedBox(0)
                        var handlers = JobHandlers()
                        handlers.register("send-invoice") { (_: Invoice, _) in ran.withLock { $0 += 1 } }
                        let worker = try QueueWorker(queue: scenario.queue, client: db.client, handlers: handlers, configuration: .init(
                            queue: "billing", concurrency: 4, pollInterval: .milliseconds(100), reapInterval: .seconds(30), listen: db.settings
                        ), logger: quietLogger)
                        try await withRunningServices([worker], logger: quietLogger) {
                            try await waitUntil("the worker runs both available jobs") { ran.value == 2 }
                            try await browser.open(site + "/queues")
                            try await browser.click("tr.queue[data-queue='billing'] button[data-action='pause']")
                            try await browser.waitUntil("document.querySelector('#confirm') !== null")
                            try await browser.click("#confirm")
                            try await browser.waitUntil("document.querySelector('#notice') !== null")
                            #expect(try await browser.elements("tr.queue[data-queue='billing'] .badge.paused").count == 1)
                            try await scenario.queue.enqueue((0..<3).map { try NewJob(kind: "send-invoice", payloadJSON: #"{"invoice": \#($0)}"#, queue: "billing") },
                                                             on: db.client, logger: db.logger)
                            // Absence cannot be awaited: for a second and a half (15 of the worker's
                            // polls, and its wake-up on the enqueue), nothing is claimed.
                            try await holdsThroughout(.milliseconds(1500), "the paused queue is left alone") {
                                try await availableJobs(scenario, db) == 3 && ran.value == 2
                            }
                            try await browser.click("tr.queue[data-queue='billing'] button[data-action='resume']")
                            try await browser.waitUntil("document.querySelector('#confirm') !== null")
                            try await browser.click("#confirm")
                            try await waitUntil("the worker runs the new jobs once resumed") { ran.value == 5 }
                            #expect(try await availableJobs(scenario, db) == 0)
                        }
                    }
                }
            }
        }
    }
}

func availableJobs(_ scenario: ConsoleScenario, _ db: TestContext) async throws -> Int {
    try await db.scalar("SELECT count(*)::int FROM \(identifier: scenario.queue.jobsTable) WHERE state = 'available'", as: Int.self)
}

let quietLogger: Logger = {
    var logger = Logger(label: "console-browser-test")
    logger.logLevel = .critical
    return logger
}()


/// Runs the console on 127.0.0.1 at a free port while `body` runs with its address.
func withLiveConsole<T: Sendable>(_ db: TestContext, mountPath: String = "", _ body: @Sendable (String) async throws -> T) async throws -> T {
    let console = try WebConsole(client: db.client, configuration: .init(
        mountPath: mountPath, queueSchemas: [ConsoleScenario.schema], knownLockNames: [ConsoleScenario.lockName], refreshInterval: .seconds(1)
    ), logger: db.logger)
    let router = Router()
    console.addRoutes(to: router)
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), onServerRunning: { channel in
        continuation.yield(channel.localAddress?.port ?? 0)
        continuation.finish()
    }, logger: quietLogger)
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            // A server that fails to start ends the port stream, so the wait below ends too.
            defer { continuation.finish() }
            try await app.runService(gracefulShutdownSignals: [])
            return nil
        }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        defer { group.cancelAll() }
        return try await body("http://127.0.0.1:\(port)\(mountPath)")
    }
}
