import Foundation
import Hummingbird
import HummingbirdTesting
import HTTPTypes
import Logging
import PostgresLocks
import PostgresLocksTestSupport
import PostgresLocksWeb
import PostgresNIO
import PostgresQueue
import Testing

/// The console's routes, through Hummingbird's router test client, against a real PostgreSQL.
@Suite("Web console routes")
struct ConsoleRouteTests {
    func withConsole<T: Sendable>(
        _ db: TestContext,
        client: PostgresClient? = nil,
        logger: Logger? = nil,
        _ configure: (inout WebConsole.Configuration) -> Void = { _ in },
        _ body: @Sendable @escaping (any TestClientProtocol) async throws -> T
    ) async throws -> T {
        var configuration = WebConsole.Configuration(mountPath: "/ops", queueSchemas: [ConsoleScenario.schema])
        configure(&configuration)
        let console = try WebConsole(client: client ?? db.client, configuration: configuration, logger: logger ?? db.logger)
        let router = Router()
        console.addRoutes(to: router)
        let app = Application(router: router)
        return try await app.test(.router) { client in try await body(client) }
    }

    @Test func theLocksPageShowsTheRootBlockerAndEachWaiterOnceWithTheKeysName() async throws {
        try await TestDatabase.withDatabase { db in
            try await withBlockedSessions(db) { pids in
                try await withConsole(db, { $0.knownLockNames = [ConsoleScenario.lockName] }) { client in
                    let page = try await client.execute(uri: "/ops/locks", method: .get)
                    #expect(page.status == .ok)
                    let html = String(buffer: page.body)
                    #expect(html.contains("<tr class=\"root-blocker\" data-pid=\"\(pids[0])\">"))
                    #expect(html.contains("<td class=\"waiter-count\">2</td>"))
                    #expect(html.contains("id=\"root-blockers\">1<"))
                    #expect(html.contains("advisory \(ConsoleScenario.lockName)"))
                    // The graph draws each session once: one box per pid.
                    let graph = try #require(html.components(separatedBy: "<svg class=\"graph\"").last?.components(separatedBy: "</svg>").first)
                    for pid in pids {
                        #expect(graph.components(separatedBy: "<g class=\"session").filter { $0.contains("data-pid=\"\(pid)\"") }.count == 1)
                    }
                    #expect(html.contains("<g class=\"session root\" data-pid=\"\(pids[0])\""))
                }
            }
        }
    }

    @Test func aSessionsNameAndQueryHoldingMarkupAreShownAsTextOnTheLocksPage() async throws {
        try await TestDatabase.withDatabase { db in
            try await db.withConnections(2) { connections in
                let hostile = "<script>window.pwnedApp=1</script>"
                _ = try await connections[0].query("SELECT set_config('application_name', \(hostile), false)", logger: db.logger).collect()
                _ = try await connections[0].query("SELECT pg_advisory_lock(77, 1), '<img src=x onerror=alert(1)>'", logger: db.logger).collect()
                let waiting = Task { try? await connections[1].query("SELECT pg_advisory_lock(77, 1)", logger: db.logger).collect() }
                try await waitUntil("the waiter queues") { try await waiters(db) == 1 }
                try await withConsole(db) { client in
                    let html = String(buffer: try await client.execute(uri: "/ops/locks", method: .get).body)
                    #expect(html.contains("&lt;script&gt;window.pwnedApp=1&lt;/script&gt;"))
                    #expect(!html.contains("<script>window"))
                    #expect(html.contains("&lt;img src=x onerror=alert(1)&gt;") && !html.contains("<img"))
                }
                _ = try await connections[0].query("SELECT pg_advisory_unlock_all()", logger: db.logger).collect()
                _ = await waiting.value
                _ = try await connections[1].query("SELECT pg_advisory_unlock_all()", logger: db.logger).collect()
            }
        }
    }

    @Test func everyPageSendsAStrictContentSecurityPolicyAndNoInlineScript() async throws {
        try await TestDatabase.withDatabase { db in
            let scenario = try await ConsoleScenario.jobs(on: db)
            try await withConsole(db) { client in
                for path in ["/ops/locks", "/ops/queues", "/ops/jobs", "/ops/jobs/\(scenario.jobs[.dead]!)", "/ops/leaders", "/ops/doctor", "/ops/jobs/999999999"] {
                    let response = try await client.execute(uri: path, method: .get)
                    let policy = try #require(response.headers[.contentSecurityPolicy], "\(path) sends a policy")
                    #expect(policy.contains("default-src 'none'") && policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"))
                    #expect(response.headers[.xContentTypeOptions] == "nosniff")
                    let html = String(buffer: response.body)
                    #expect(!html.contains("<script>"), "\(path) has no inline script")
                    #expect(!html.contains("style=\""), "\(path) has no inline style")
                }
            }
        }
    }

    @Test func aPayloadAndAnErrorHoldingScriptAreShownAsTextOnEveryPage() async throws {
        try await TestDatabase.withDatabase { db in
            let scenario = try await ConsoleScenario.jobs(on: db)
            let dead = try #require(scenario.jobs[.dead])
            try await withConsole(db) { client in
                for path in ["/ops/jobs/\(dead)", "/ops/jobs?state=dead", "/ops/jobs?error=pwned", "/ops/jobs?error=pwnedError+%3D+1"] {
                    let html = String(buffer: try await client.execute(uri: path, method: .get).body)
                    #expect(!html.contains("<script>window"), "\(path) renders no script from the database")
                    #expect(!html.contains("<img src=x"), "\(path) renders no element from the database")
                    #expect(html.contains("&lt;script&gt;window.pwnedError = 1&lt;/script&gt;"), "\(path) shows the error as text")
                }
                let job = String(buffer: try await client.execute(uri: "/ops/jobs/\(dead)", method: .get).body)
                #expect(job.contains("&lt;script&gt;window.pwned = 1"))
            }
        }
    }

    @Test func anActionIsConfirmedFirstAndRefusedWithoutItsCSRFToken() async throws {
        try await TestDatabase.withDatabase { db in
            let scenario = try await ConsoleScenario.jobs(on: db)
            let dead = try #require(scenario.jobs[.dead])
            try await withConsole(db) { client in
                let page = String(buffer: try await client.execute(uri: "/ops/jobs/\(dead)", method: .get).body)
                let token = try #require(page.csrfToken)
                let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
                // No token, or a wrong one: refused, nothing changed.
                for body in ["", "csrf=AAAA&confirm=yes", "csrf=\(token.dropLast(4))xxxx&confirm=yes"] {
                    let refused = try await client.execute(uri: "/ops/jobs/\(dead)/retry", method: .post, headers: form, body: ByteBuffer(string: body))
                    #expect(refused.status == .forbidden)
                }
                #expect(try await state(of: dead, scenario, db) == "dead")
                // The token without confirmation: a confirmation page, nothing changed.
                let escaped = token.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
                let confirm = try await client.execute(uri: "/ops/jobs/\(dead)/retry", method: .post, headers: form, body: ByteBuffer(string: "csrf=\(escaped)"))
                #expect(confirm.status == .ok)
                #expect(String(buffer: confirm.body).contains("id=\"confirm\""))
                #expect(try await state(of: dead, scenario, db) == "dead")
                // Confirmed: done, and back to the job's page.
                let done = try await client.execute(uri: "/ops/jobs/\(dead)/retry", method: .post, headers: form,
                                                    body: ByteBuffer(string: "csrf=\(escaped)&confirm=yes&back=%2Fops%2Fjobs%2F\(dead)"))
                #expect(done.status == .seeOther)
                #expect(done.headers[.location]?.hasPrefix("/ops/jobs/\(dead)?done=") == true)
                #expect(try await state(of: dead, scenario, db) == "available")
                // A return path to another site is not followed.
                let cancelled = try #require(scenario.jobs[.cancelled])
                let elsewhere = try await client.execute(uri: "/ops/jobs/\(cancelled)/retry", method: .post, headers: form,
                                                         body: ByteBuffer(string: "csrf=\(escaped)&confirm=yes&back=https%3A%2F%2Fevil.example%2F"))
                #expect(elsewhere.headers[.location]?.hasPrefix("/ops/jobs/\(cancelled)") == true)
            }
        }
    }

    @Test func discardingAndCancellingFromTheConsoleEndTheJobsAndAreOfferedOnlyWhereTheyApply() async throws {
        try await TestDatabase.withDatabase { db in
            let scenario = try await ConsoleScenario.jobs(on: db)
            let available = try #require(scenario.jobs[.available]), running = try #require(scenario.jobs[.running])
            try await withConsole(db) { client in
                let page = String(buffer: try await client.execute(uri: "/ops/jobs/\(available)", method: .get).body)
                #expect(page.contains("data-action=\"discard\"") && page.contains("data-action=\"cancel\"") && !page.contains("data-action=\"retry\""))
                let token = try #require(page.csrfToken).addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
                let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
                _ = try await client.execute(uri: "/ops/jobs/\(available)/discard", method: .post, headers: form, body: ByteBuffer(string: "csrf=\(token)&confirm=yes"))
                _ = try await client.execute(uri: "/ops/jobs/\(running)/cancel", method: .post, headers: form, body: ByteBuffer(string: "csrf=\(token)&confirm=yes"))
                let discarded = try await scenario.queue.job(id: available, on: db.client, logger: db.logger)
                #expect(discarded?.state == "dead" && discarded?.lastError == "discarded by an operator")
                let cancelled = try await scenario.queue.job(id: running, on: db.client, logger: db.logger)
                #expect(cancelled?.state == "cancelled" && cancelled?.leaseOwner == nil)
                let completed = String(buffer: try await client.execute(uri: "/ops/jobs/\(try #require(scenario.jobs[.completed]))", method: .get).body)
                #expect(!completed.contains("method=\"post\""), "a completed job offers no action")
            }
        }
    }

    @Test func everyActionIsLoggedWithWhoDidItAndNoSecretIsLogged() async throws {
        try await TestDatabase.withDatabase { db in
            let scenario = try await ConsoleScenario.jobs(on: db)
            let dead = try #require(scenario.jobs[.dead])
            let log = CapturedLog()
            let secret = "secret-\(UUID().uuidString)"
            try await withConsole(db, logger: log.logger(), { $0.authentication = .basic(username: "ana", password: secret) }) { client in
                let signIn: HTTPFields = [.authorization: "Basic " + Data("ana:\(secret)".utf8).base64EncodedString()]
                let page = String(buffer: try await client.execute(uri: "/ops/jobs/\(dead)", method: .get, headers: signIn).body)
                let token = try #require(page.csrfToken).addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
                var headers = signIn
                headers[.contentType] = "application/x-www-form-urlencoded"
                let done = try await client.execute(uri: "/ops/jobs/\(dead)/retry", method: .post, headers: headers, body: ByteBuffer(string: "csrf=\(token)&confirm=yes"))
                #expect(done.status == .seeOther)
                _ = try await client.execute(uri: "/ops/jobs/\(dead)/retry", method: .post, headers: headers, body: ByteBuffer(string: "confirm=yes"))
            }
            let actions = log.records.filter { $0.metadata["action"] != nil }
            let performed = try #require(actions.first { $0.level == .notice })
            #expect(performed.metadata["user"] == "ana" && performed.metadata["action"] == "retry" && performed.metadata["target"] == "job \(dead)")
            #expect(actions.contains { $0.level == .warning && $0.message.contains("CSRF") }, "a refused action is logged too")
            #expect(!log.records.contains { $0.message.contains(secret) || $0.metadata.values.contains { $0.contains(secret) } })
        }
    }

    @Test func withoutSignInOnlyRequestsAddressedToThisMachineAreAnswered() async throws {
        try await TestDatabase.withDatabase { db in
            try await withConsole(db) { client in
                // A page of another site whose name was pointed at 127.0.0.1 (DNS rebinding).
                let rebound = try await client.execute(uri: "/ops/locks", method: .get, headers: [HTTPField.Name("Host")!: "evil.example:8080"])
                #expect(rebound.status == .forbidden)
                for host in ["localhost:8080", "127.0.0.1:8080", "[::1]:8080"] {
                    let local = try await client.execute(uri: "/ops/locks", method: .get, headers: [HTTPField.Name("Host")!: host])
                    #expect(local.status == .ok, "\(host)")
                }
            }
        }
        #expect(!LoopbackHost.isLoopback(host: "127.example.com") && !LoopbackHost.isLoopback(host: "127.0.0.1.evil.example"))
        #expect(LoopbackHost.isLoopback(host: "127.0.0.1") && LoopbackHost.isLoopback(host: "::1") && LoopbackHost.isLoopback(authority: "[::1]:80"))
    }

    @Test func aPostFromAnotherSiteIsRefusedEvenWithTheToken() async throws {
        try await TestDatabase.withDatabase { db in
            let scenario = try await ConsoleScenario.jobs(on: db)
            let available = try #require(scenario.jobs[.available])
            try await withConsole(db) { client in
                let token = try #require(String(buffer: try await client.execute(uri: "/ops/jobs/\(available)", method: .get).body).csrfToken)
                let body = "csrf=\(token.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)&confirm=yes"
                for header in [(HTTPField.Name.origin, "https://evil.example"), (HTTPField.Name("Sec-Fetch-Site")!, "cross-site")] {
                    let response = try await client.execute(uri: "/ops/jobs/\(available)/cancel", method: .post,
                                                            headers: [.contentType: "application/x-www-form-urlencoded", header.0: header.1], body: ByteBuffer(string: body))
                    #expect(response.status == .forbidden)
                }
                #expect(try await state(of: available, scenario, db) == "available")
            }
        }
    }

    @Test func signInIsRequiredWhenConfiguredAndTheSecretIsNeverShown() async throws {
        try await TestDatabase.withDatabase { db in
            let secret = "s3cret-token-\(UUID().uuidString)"
            try await withConsole(db, { $0.authentication = .token(secret) }) { client in
                let anonymous = try await client.execute(uri: "/ops/locks", method: .get)
                #expect(anonymous.status == .unauthorized)
                #expect(anonymous.headers[.wwwAuthenticate]?.hasPrefix("Basic") == true)
                let wrong = try await client.execute(uri: "/ops/locks", method: .get, headers: [.authorization: "Bearer nope"])
                #expect(wrong.status == .unauthorized)
                let bearer = try await client.execute(uri: "/ops/locks", method: .get, headers: [.authorization: "Bearer \(secret)"])
                #expect(bearer.status == .ok)
                let basic = "Basic " + Data("anyone:\(secret)".utf8).base64EncodedString()
                let browser = try await client.execute(uri: "/ops/queues", method: .get, headers: [.authorization: basic])
                #expect(browser.status == .ok)
                #expect(!String(buffer: browser.body).contains(secret))
                #expect(String(buffer: browser.body).contains("id=\"no-queue\""), "a schema without queue tables is said so")
                // An asset too needs sign-in.
                #expect(try await client.execute(uri: "/ops/assets/console.js", method: .get).status == .unauthorized)
            }
            try await withConsole(db, { $0.authentication = .basic(username: "ops", password: secret) }) { client in
                let right = "Basic " + Data("ops:\(secret)".utf8).base64EncodedString()
                let wrongUser = "Basic " + Data("other:\(secret)".utf8).base64EncodedString()
                let signedIn = try await client.execute(uri: "/ops/locks", method: .get, headers: [.authorization: right])
                let refused = try await client.execute(uri: "/ops/locks", method: .get, headers: [.authorization: wrongUser])
                #expect(signedIn.status == .ok)
                #expect(refused.status == .unauthorized)
            }
        }
    }

    @Test func aReadOnlyConsoleShowsNoActionAndRefusesThem() async throws {
        try await TestDatabase.withDatabase { db in
            let scenario = try await ConsoleScenario.jobs(on: db)
            let dead = try #require(scenario.jobs[.dead])
            try await withConsole(db, { $0.readOnly = true }) { client in
                for path in ["/ops/jobs/\(dead)", "/ops/queues", "/ops/locks"] {
                    let html = String(buffer: try await client.execute(uri: path, method: .get).body)
                    #expect(!html.contains("method=\"post\""), "\(path) shows no action")
                }
                let response = try await client.execute(uri: "/ops/jobs/\(dead)/retry", method: .post,
                                                        headers: [.contentType: "application/x-www-form-urlencoded"], body: ByteBuffer(string: "confirm=yes"))
                #expect(response.status == .forbidden)
                #expect(try await state(of: dead, scenario, db) == "dead")
            }
        }
    }

    @Test func theQueuesPageCountsEachStateAndPausingAQueueIsRecorded() async throws {
        try await TestDatabase.withDatabase { db in
            let scenario = try await ConsoleScenario.jobs(on: db)
            try await withConsole(db) { client in
                let html = String(buffer: try await client.execute(uri: "/ops/queues", method: .get).body)
                for state in ["available", "running", "dead", "cancelled", "completed"] {
                    #expect(html.contains("<td class=\"num state-\(state)\"><a href=\"/ops/jobs?queue=billing&amp;state=\(state)\">1</a></td>"), "one \(state) job")
                }
                #expect(html.contains("Throughput per minute") && html.contains("<svg"))
                #expect(html.contains("Last hour of every queue in the schema"))
                let one = String(buffer: try await client.execute(uri: "/ops/queues?queue=billing", method: .get).body)
                #expect(one.contains("Last hour of queue <strong>billing</strong>"))
                let token = try #require(html.csrfToken).addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
                let paused = try await client.execute(uri: "/ops/queues/billing/pause", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                                      body: ByteBuffer(string: "csrf=\(token)&confirm=yes&schema=\(ConsoleScenario.schema)"))
                #expect(paused.status == .seeOther)
                #expect(try await scenario.queue.control(of: "billing", on: db.client, logger: db.logger).paused)
                let after = String(buffer: try await client.execute(uri: "/ops/queues", method: .get).body)
                #expect(after.contains("<span class=\"badge paused\">paused</span>"))
            }
        }
    }

    @Test func terminatingTheRootBlockerFromTheConsoleLetsTheWaitersThrough() async throws {
        try await TestDatabase.withDatabase { db in
            try await withBlockedSessions(db) { pids in
                try await withConsole(db) { client in
                    let html = String(buffer: try await client.execute(uri: "/ops/locks", method: .get).body)
                    let token = try #require(html.csrfToken).addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
                    let response = try await client.execute(uri: "/ops/backends/\(pids[0])/terminate", method: .post,
                                                            headers: [.contentType: "application/x-www-form-urlencoded"], body: ByteBuffer(string: "csrf=\(token)&confirm=yes"))
                    #expect(response.status == .seeOther)
                    try await waitUntil("the holder's session ends") {
                        try await db.scalar("SELECT count(*)::int FROM pg_stat_activity WHERE pid = \(pids[0])", as: Int.self) == 0
                    }
                    // The first waiter now holds the key; the second waits behind it.
                    try await waitUntil("the first waiter is granted the lock") { try await waiters(db) == 1 }
                }
            }
        }
    }

    @Test func theLeadersPageShowsTheCurrentLeaderAndItsTerm() async throws {
        try await TestDatabase.withDatabase { db in
            let election = try LeaderElection(configuration: .init(name: "console-scheduler", connection: db.settings), logger: db.logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await election.run() }
                try await waitUntil("the election has a leader") {
                    try await LeaderTerm.all(on: db.client, logger: db.logger).first?.lockHolderPID != nil
                }
                try await withConsole(db) { client in
                    let html = String(buffer: try await client.execute(uri: "/ops/leaders", method: .get).body)
                    #expect(html.contains("data-election=\"console-scheduler\""))
                    #expect(html.contains("<td class=\"num\">1</td>"))
                    #expect(!html.contains("no leader now"))
                }
                group.cancelAll()
            }
        }
    }

    @Test func theConsoleAnswersAgainAfterItsSessionsAreTerminatedAndNeverShowsTheServersError() async throws {
        try await TestDatabase.withDatabase { db in
            let scenario = try await ConsoleScenario.jobs(on: db)
            try await withConsole(db) { client in
                #expect(try await client.execute(uri: "/ops/queues", method: .get).status == .ok)
                // Every other session of this database ends, the console's pooled ones among them.
                _ = try await db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
                var failures: [String] = []
                try await waitUntil("the console answers again") {
                    let response = try await client.execute(uri: "/ops/queues", method: .get)
                    if response.status == .ok { return true }
                    failures.append(String(buffer: response.body))
                    return false
                }
                // A failed page says what happened in general terms: no SQL, no server message.
                for page in failures {
                    #expect(page.contains("could not be read from the database"))
                    #expect(!page.contains("SELECT") && !page.contains("terminating connection"))
                }
                #expect(try await scenario.queue.job(id: try #require(scenario.jobs[.dead]), on: db.client, logger: db.logger)?.state == "dead")
            }
        }
    }

    @Test(.needsPgBouncer) func theConsoleReadsAndActsThroughAPoolerInTransactionMode() async throws {
        try await TestDatabase.withDatabase { db in
            let scenario = try await ConsoleScenario.jobs(on: db)
            let dead = try #require(scenario.jobs[.dead])
            try await withBlockedSessions(db) { pids in
                try await TestPgBouncer.withPooler(mode: .transaction, on: db) { pooled in
                    try await withConsole(db, client: pooled.client) { client in
                        let locks = String(buffer: try await client.execute(uri: "/ops/locks", method: .get).body)
                        #expect(locks.contains("<tr class=\"root-blocker\" data-pid=\"\(pids[0])\">"))
                        #expect(locks.contains("<td class=\"waiter-count\">2</td>"))
                        let queues = String(buffer: try await client.execute(uri: "/ops/queues", method: .get).body)
                        #expect(queues.contains("<td class=\"num state-dead\"><a href=\"/ops/jobs?queue=billing&amp;state=dead\">1</a></td>"))
                        let page = String(buffer: try await client.execute(uri: "/ops/jobs/\(dead)", method: .get).body)
                        let token = try #require(page.csrfToken).addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
                        let done = try await client.execute(uri: "/ops/jobs/\(dead)/retry", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                                            body: ByteBuffer(string: "csrf=\(token)&confirm=yes"))
                        #expect(done.status == .seeOther)
                        #expect(try await state(of: dead, scenario, db) == "available")
                    }
                }
            }
        }
    }

    @Test func theDoctorPageShowsTheVerdicts() async throws {
        try await TestDatabase.withDatabase { db in
            try await withConsole(db) { client in
                let html = String(buffer: try await client.execute(uri: "/ops/doctor", method: .get).body)
                #expect(html.contains("class=\"verdict level-ok\""))
                #expect(html.contains("PostgreSQL"))
            }
        }
    }

    func state(of id: Int64, _ scenario: ConsoleScenario, _ db: TestContext) async throws -> String? {
        try await scenario.queue.job(id: id, on: db.client, logger: db.logger)?.state
    }
}
