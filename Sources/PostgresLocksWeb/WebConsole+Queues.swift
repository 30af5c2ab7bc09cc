import Foundation
import PostgresLocks
import PostgresQueue

extension WebConsole {
    /// The queue chosen by the request's `schema` (one of the configured ones only).
    func queue(for request: PageRequest) throws -> JobQueue {
        guard let schema = request.value("schema") else { return queues[0] }
        guard let queue = queues.first(where: { $0.schema.name == schema }) else {
            throw WebConsoleError(code: .notFound, message: "the queue schema \(schema) is not shown by this console")
        }
        return queue
    }

    /// A link to a page with the schema kept when it is not the default.
    func link(_ path: String, queue: JobQueue, _ parameters: [(String, String)] = []) -> String {
        var items = parameters
        if queue.schema != queues[0].schema { items.insert(("schema", queue.schema.name), at: 0) }
        guard !items.isEmpty else { return link(path) }
        var components = URLComponents()
        components.queryItems = items.map { URLQueryItem(name: $0.0, value: $0.1) }
        return link(path) + "?" + (components.percentEncodedQuery ?? "")
    }

    func schemaPicker(_ current: JobQueue, path: String) -> HTML {
        guard queues.count > 1 else { return .empty }
        return "<p class=\"schemas\">Schema: " + HTML.joined(queues.map { queue in
            queue.schema == current.schema ? "<strong>\(queue.schema.name)</strong>" : "<a href=\"\(link(path, queue: queue))\">\(queue.schema.name)</a>"
        }, separator: " · ") + "</p>"
    }

    /// The queues page: counts by queue, kind and state; the last hour; pauses; schedules.
    func queuesPage(_ request: PageRequest) async throws -> ConsolePage {
        let queue = try self.queue(for: request)
        guard try await queueTablesExist(queue) else { return try await missingQueuePage(queue, title: "Queues", path: "/queues") }
        let chosen = request.value("queue")
        let dashboard = try await queue.dashboard(queue: chosen, on: client, logger: logger)
        let states: [JobState] = [.available, .running, .dead, .cancelled, .completed]
        var main: HTML = "<h1>Queues</h1>" + schemaPicker(queue, path: "/queues")
        let minutes = dashboard.minutes
        let charts: [MinuteChart] = [
            MinuteChart(title: "Throughput per minute", unit: "", style: .bars, series: [
                .init(name: "completed", cssClass: "ok", values: minutes.map { Double($0.completed) }),
                .init(name: "failed", cssClass: "bad", values: minutes.map { Double($0.failed) }),
            ]),
            MinuteChart(title: "Pickup latency", unit: "s", style: .line, series: [.init(name: "mean", cssClass: "line", values: minutes.map(\.pickupSeconds))]),
            MinuteChart(title: "Depth (ready, not picked up)", unit: "", style: .line, series: [.init(name: "jobs", cssClass: "line", values: minutes.map { Double($0.depth) })]),
        ]
        let scope: HTML = chosen.map { "Last hour of queue <strong>\($0)</strong> · <a href=\"\(link("/queues", queue: queue))\">all queues</a>" }
            ?? "Last hour of every queue in the schema (a queue's name shows its own)."
        main += "<p class=\"quiet\" id=\"chart-scope\">\(scope)</p><section class=\"charts\">\(charts.map { $0.svg() })</section>"
        var rows: [HTML] = []
        for name in dashboard.queues {
            let paused = dashboard.paused.contains(name)
            let control = dashboard.controls.first { $0.queue == name } ?? .unchanged(name)
            var settings: [String] = []
            if let concurrency = control.concurrency { settings.append("\(concurrency) per worker") }
            for limit in control.limits {
                var parts: [String] = []
                if let running = limit.maxRunning { parts.append("≤ \(running) running") }
                if let rate = limit.rate { parts.append("≤ \(rate.starts) starts per \(rate.period)") }
                settings.append("\(limit.kind ?? "all kinds"): " + parts.joined(separator: ", "))
            }
            let kinds = Array(Set(dashboard.counts.filter { $0.queue == name }.map(\.kind))).sorted()
            let button = paused
                ? actionButton("Resume", path: "/queues/\(percentPath(name))/resume", request: request, fields: ["schema": queue.schema.name])
                : actionButton("Pause", path: "/queues/\(percentPath(name))/pause", request: request, fields: ["schema": queue.schema.name])
            let stateCells: HTML = HTML.joined(states.map { state in
                let total = dashboard.counts.filter { $0.queue == name && $0.state == state }.reduce(Int64(0)) { $0 + $1.count }
                return "<td class=\"num state-\(state.rawValue)\"><a href=\"\(link("/jobs", queue: queue, [("queue", name), ("state", state.rawValue)]))\">\(Format.count(total))</a></td>"
            })
            rows.append("<tr class=\"queue\" data-queue=\"\(name)\"><th><a href=\"\(link("/queues", queue: queue, [("queue", name)]))\">\(name)</a>\(paused ? HTML(" <span class=\"badge paused\">paused</span>") : HTML.empty)</th><td></td>\(stateCells)<td class=\"settings\">\(settings.joined(separator: "; "))</td><td class=\"actions\">\(button)</td></tr>")
            for kind in kinds {
                let cells: HTML = HTML.joined(states.map { state in
                    let count = dashboard.counts.first { $0.queue == name && $0.kind == kind && $0.state == state }?.count ?? 0
                    return "<td class=\"num\"><a href=\"\(link("/jobs", queue: queue, [("queue", name), ("kind", kind), ("state", state.rawValue)]))\">\(Format.count(count))</a></td>"
                })
                rows.append("<tr class=\"kind\" data-queue=\"\(name)\" data-kind=\"\(kind)\"><td></td><td>\(kind)</td>\(cells)<td></td><td></td></tr>")
            }
        }
        main += """
            <h2>Jobs by queue and kind</h2>
            <table class="counts"><thead><tr><th>queue</th><th>kind</th><th>available</th><th>running</th><th>dead</th><th>cancelled</th><th>completed (1 h)</th><th>limits</th><th></th></tr></thead><tbody>\(rows)</tbody></table>
            <p class="quiet">Completed jobs kept: about \(Format.count(max(dashboard.completedEstimate, dashboard.counts.filter { $0.state == .completed }.reduce(Int64(0)) { $0 + $1.count }))) (the planner's estimate).</p>
            """
        if !dashboard.schedules.isEmpty {
            let scheduleRows: [HTML] = dashboard.schedules.map { schedule in
                "<tr><td>\(schedule.name)</td><td><code>\(schedule.schedule)</code></td><td>\(schedule.queue)</td><td>\(schedule.kind)</td><td>\(Format.time(schedule.lastTick))</td><td>\(Format.time(schedule.nextTick))</td></tr>"
            }
            main += "<h2>Schedules</h2><table><thead><tr><th>name</th><th>schedule</th><th>queue</th><th>kind</th><th>last run</th><th>next run</th></tr></thead><tbody>\(scheduleRows)</tbody></table>"
        }
        return ConsolePage(title: "Queues", main: main)
    }

    /// Whether the queue's tables exist (a schema named in the configuration may not be
    /// migrated yet).
    func queueTablesExist(_ queue: JobQueue) async throws -> Bool {
        try await queue.isInstalled(on: client, logger: logger)
    }

    /// What a page says when its queue schema holds no queue.
    func missingQueuePage(_ queue: JobQueue, title: String, path: String) async throws -> ConsolePage {
        let installed = try await JobQueue.installedSchemas(on: client, logger: logger)
        let found: HTML = installed.isEmpty
            ? "No schema on this server holds queue tables."
            : "Schemas holding queue tables: \(installed.joined(separator: ", "))."
        return ConsolePage(title: title, main: """
            <h1>\(title)</h1>\(schemaPicker(queue, path: path))
            <p class="warn" id="no-queue">Schema \(queue.schema.name) holds no queue tables. \(found) A service creates them with <code>JobQueue(schema: "\(queue.schema.name)").migrate(on:logger:)</code>; <code>pglock web --schema</code> names the schema your service uses.</p>
            """)
    }

    /// The job list with its filters.
    func jobsPage(_ request: PageRequest) async throws -> ConsolePage {
        let queue = try self.queue(for: request)
        var state: JobState?
        if let text = request.value("state") {
            guard let value = JobState(rawValue: text) else { throw WebConsoleError(code: .badRequest, message: "unknown state \(text)") }
            state = value
        }
        guard try await queueTablesExist(queue) else { return try await missingQueuePage(queue, title: "Jobs", path: "/jobs") }
        let before = request.value("before").flatMap(Int64.init)
        let filter = JobFilter(state: state, queue: request.value("queue"), kind: request.value("kind"), errorContains: request.value("error"), before: before)
        let jobs = try await queue.jobs(matching: filter, limit: 50, on: client, logger: logger)
        let stateOptions: HTML = HTML.joined(([""] + JobState.allCases.map(\.rawValue)).map { value in
            "<option value=\"\(value)\"\(value == (state?.rawValue ?? "") ? HTML(" selected") : HTML.empty)>\(value.isEmpty ? "any state" : value)</option>"
        })
        let schemaField: HTML = queue.schema != queues[0].schema ? "<input type=\"hidden\" name=\"schema\" value=\"\(queue.schema.name)\">" : .empty
        var main: HTML = """
            <h1>Jobs</h1>\(schemaPicker(queue, path: "/jobs"))
            <form class="filters" method="get" action="\(link("/jobs"))">\(schemaField)
            <label>state <select name="state">\(stateOptions)</select></label>
            <label>queue <input name="queue" value="\(filter.queue ?? "")" size="12"></label>
            <label>kind <input name="kind" value="\(filter.kind ?? "")" size="14"></label>
            <label>error contains <input name="error" value="\(filter.errorContains ?? "")" size="18"></label>
            <button type="submit">Filter</button></form>
            """
        let rows: [HTML] = jobs.map { job in
            """
            <tr class="job state-\(job.state)" data-job="\(job.id)"><td><a href="\(link("/jobs/\(job.id)", queue: queue))">\(job.id)</a></td><td>\(job.queue)</td><td>\(job.kind)</td>\
            <td class="state">\(job.state)</td><td>\(job.attempt)/\(job.maxAttempts)</td><td>\(Format.time(job.runAt))</td><td class="error-text">\(String((job.lastError ?? "").prefix(160)))</td></tr>
            """
        }
        main += "<table class=\"jobs\"><thead><tr><th>id</th><th>queue</th><th>kind</th><th>state</th><th>attempt</th><th>run at</th><th>last error</th></tr></thead><tbody>\(rows)</tbody></table>"
        if jobs.count == 50, let last = jobs.last {
            var parameters: [(String, String)] = []
            for (name, value) in [("state", state?.rawValue), ("queue", filter.queue), ("kind", filter.kind), ("error", filter.errorContains)] {
                if let value { parameters.append((name, value)) }
            }
            parameters.append(("before", String(last.id)))
            main += "<p><a class=\"older\" href=\"\(link("/jobs", queue: queue, parameters))\">Older jobs →</a></p>"
        }
        if jobs.isEmpty { main += "<p class=\"quiet\">No job matches.</p>" }
        return ConsolePage(title: "Jobs", main: main)
    }

    /// One job's page, with the actions its state allows.
    func jobPage(id: Int64, _ request: PageRequest) async throws -> ConsolePage {
        let queue = try self.queue(for: request)
        guard let job = try await queue.job(id: id, on: client, logger: logger) else {
            throw WebConsoleError(code: .notFound, message: "there is no job \(id) in schema \(queue.schema.name)")
        }
        let fields = ["schema": queue.schema.name]
        var actions = HTML.empty
        if job.state == "dead" || job.state == "cancelled" { actions += actionButton("Retry", path: "/jobs/\(id)/retry", request: request, fields: fields) }
        if job.state == "available" || job.state == "running" {
            actions += actionButton("Cancel", path: "/jobs/\(id)/cancel", request: request, fields: fields)
            actions += actionButton("Discard", path: "/jobs/\(id)/discard", request: request, fields: fields, danger: true)
        }
        let payload = prettyJSON(job.payload)
        let rows: [(String, String)] = [
            ("queue", job.queue), ("kind", job.kind), ("priority", String(job.priority)),
            ("attempts", "\(job.attempt) of \(job.maxAttempts)"), ("enqueued", Format.time(job.createdAt)), ("run at", Format.time(job.runAt)),
            ("last attempt started", Format.time(job.attemptedAt)), ("finished", Format.time(job.finishedAt)),
            ("lease owner", job.leaseOwner ?? ""), ("lease expires", Format.time(job.leaseExpiresAt)), ("unique key", job.uniqueKey ?? ""),
        ]
        let table: [HTML] = rows.map { "<tr><th>\($0.0)</th><td>\($0.1)</td></tr>" }
        let main: HTML = """
            <h1>Job \(job.id) <span class="state state-\(job.state)" id="job-state">\(job.state)</span></h1>
            <div class="actions">\(actions)</div>
            <table class="detail">\(table)</table>
            <h2>Payload</h2><pre id="payload">\(payload)</pre>
            <h2>Last error</h2><pre id="last-error">\(job.lastError ?? "none")</pre>
            """
        return ConsolePage(title: "Job \(job.id)", main: main)
    }

    func prettyJSON(_ text: String) -> String {
        guard let data = text.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]),
              let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]),
              let result = String(data: pretty, encoding: .utf8)
        else { return text }
        return result
    }

    func percentPath(_ segment: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return segment.addingPercentEncoding(withAllowedCharacters: allowed) ?? segment
    }
}
