import Foundation
import Hummingbird
import Logging
import PostgresLocks
import PostgresNIO
import PostgresQueue

extension WebConsole {
    func jobAction(_ name: String?) throws -> ConsoleAction {
        switch name {
        case "retry": .retryJob
        case "cancel": .cancelJob
        case "discard": .discardJob
        default: throw WebConsoleError(code: .notFound, message: "no job action \(name ?? "")")
        }
    }

    func queueAction(_ name: String?) throws -> ConsoleAction {
        switch name {
        case "pause": .pauseQueue
        case "resume": .resumeQueue
        default: throw WebConsoleError(code: .notFound, message: "no queue action \(name ?? "")")
        }
    }

    func backendAction(_ name: String?) throws -> ConsoleAction {
        switch name {
        case "cancel": .cancelBackend
        case "terminate": .terminateBackend
        default: throw WebConsoleError(code: .notFound, message: "no backend action \(name ?? "")")
        }
    }

    /// Runs a posted action: checks the CSRF token, asks for confirmation when the form does
    /// not carry it, then acts, logs who did what, and sends the browser back.
    func act(_ request: Request, action: ConsoleAction, target: ConsoleAction.Target) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: 16 * 1024)
        let form = ActionForm(urlEncoded: String(buffer: body))
        let actor = ConsoleRequest.actor
        guard let token = form["csrf"], isValidCSRFToken(token, for: actor) else {
            logger.warning("pglock web: refused an action without a valid CSRF token", metadata: ["user": "\(actor)", "action": "\(action.rawValue)", "target": "\(target.description)"])
            throw WebConsoleError(code: .forbidden, message: "the form's CSRF token is missing or wrong: reload the page and try again")
        }
        let queue = try self.queue(for: PageRequest(query: form.fields, actor: actor, csrfToken: token, path: ""))
        let fallback: String = switch target {
        case .job(let id): link("/jobs/\(id)", queue: queue)
        case .queue: link("/queues", queue: queue)
        case .backend: link("/locks")
        }
        let back = form.back(within: mountPath, default: fallback)
        guard form["confirm"] == "yes" else {
            return try await page(request) { pageRequest in
                var fields: HTML = "<input type=\"hidden\" name=\"csrf\" value=\"\(token)\"><input type=\"hidden\" name=\"confirm\" value=\"yes\"><input type=\"hidden\" name=\"back\" value=\"\(back)\">"
                if let schema = form["schema"] { fields += "<input type=\"hidden\" name=\"schema\" value=\"\(schema)\">" }
                return ConsolePage(title: "Confirm", main: """
                    <h1>Confirm</h1><p class="question">\(action.question(target))</p>
                    <form method="post" action="\(request.uri.path)">\(fields)<button type="submit" id="confirm" class="danger">\(action.label)</button> <a href="\(back)" id="dont">Don't</a></form>
                    """)
            }
        }
        let changed = try await perform(action, on: target, queue: queue)
        logger.notice("pglock web: \(actor) did \(action.rawValue) on \(target.description)", metadata: [
            "user": "\(actor)", "action": "\(action.rawValue)", "target": "\(target.description)", "changed": "\(changed)",
            "schema": "\(queue.schema.name)",
        ])
        var components = URLComponents(string: back) ?? URLComponents()
        var items = (components.queryItems ?? []).filter { $0.name != "done" }
        items.append(URLQueryItem(name: "done", value: action.done(changed: changed)))
        components.queryItems = items
        return Response(status: .seeOther, headers: [.location: components.string ?? back])
    }

    /// Does it; whether anything changed.
    func perform(_ action: ConsoleAction, on target: ConsoleAction.Target, queue: JobQueue) async throws -> Bool {
        switch (action, target) {
        case (.retryJob, .job(let id)): return try await queue.retry(id: id, on: client, logger: logger)
        case (.cancelJob, .job(let id)): return try await queue.cancel(id: id, on: client, logger: logger)
        case (.discardJob, .job(let id)): return try await queue.discard(id: id, on: client, logger: logger)
        case (.pauseQueue, .queue(let name)):
            try await queue.pause(name, on: client, logger: logger)
            return true
        case (.resumeQueue, .queue(let name)):
            try await queue.resume(name, on: client, logger: logger)
            return true
        case (.cancelBackend, .backend(let pid)), (.terminateBackend, .backend(let pid)):
            // Only a backend someone waits behind: the console offers these actions to blockers.
            return try await client.signalBackend(pid, terminate: action == .terminateBackend, onlyIfBlocking: true, logger: logger)
        default:
            throw WebConsoleError(code: .badRequest, message: "\(action.rawValue) does not apply to \(target.description)")
        }
    }
}
