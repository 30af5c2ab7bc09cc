import Foundation
import Hummingbird
import HTTPTypes

extension WebConsole {
    static let fragmentHeader = HTTPField.Name("X-Console-Fragment")!

    /// Renders a page: the whole document, or only its `<main>` when the page's script asks
    /// for a refresh.
    func page(_ request: Request, _ body: (PageRequest) async throws -> ConsolePage) async throws -> Response {
        // Decoded as a form (`+` is a space), as browsers send a GET form.
        let query = ActionForm(urlEncoded: request.uri.query ?? "").fields
        let actor = ConsoleRequest.actor
        let pageRequest = PageRequest(query: query, actor: actor, csrfToken: csrfToken(for: actor), path: request.uri.path)
        var page = try await body(pageRequest)
        if let done = pageRequest.value("done"), let notice = ConsoleAction.notice(done) {
            page.main = "<p class=\"notice\" id=\"notice\">\(notice)</p>" + page.main
        }
        let markup: HTML = request.headers[Self.fragmentHeader] == nil ? document(page, active: request.uri.path) : page.main
        return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: markup.markup)))
    }

    /// The whole document around a page.
    func document(_ page: ConsolePage, active path: String) -> HTML {
        let sections = [("/locks", "Locks"), ("/queues", "Queues"), ("/jobs", "Jobs"), ("/leaders", "Leaders"), ("/doctor", "Doctor")]
        let nav = HTML.joined(sections.map { section in
            let current = path == link(section.0) || (section.0 == "/jobs" && path.hasPrefix(link("/jobs")))
            return "<a href=\"\(link(section.0))\"\(current ? HTML(" aria-current=\"page\"") : HTML.empty)>\(section.1)</a>"
        })
        let refreshSeconds = Double(configuration.refreshInterval.components.seconds) + Double(configuration.refreshInterval.components.attoseconds) / 1e18
        return """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(page.title) · pglock web</title>
            <link rel="stylesheet" href="\(link("/assets/console.css"))">
            <script src="\(link("/assets/console.js"))" defer></script>
            </head>
            <body data-refresh-ms="\(Int(refreshSeconds * 1000))">
            <header><span class="brand">pglock web</span><nav>\(nav)</nav>\(configuration.readOnly ? HTML("<span class=\"badge\">read-only</span>") : HTML.empty)<label class="auto"><input type="checkbox" id="auto-refresh" checked> refresh</label></header>
            <main id="main">\(page.main)</main>
            </body>
            </html>
            """
    }

    /// A plain page for an error (its text escaped like everything else).
    func errorPage(_ error: WebConsoleError) -> Response {
        let status = error.status
        let page = ConsolePage(title: "Error", main: "<h1>\(status.reasonPhrase)</h1><p class=\"error\">\(error.message)</p>")
        return Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: document(page, active: "").markup)))
    }

    /// A form that posts an action (confirmed on the next page), unless the console is read-only.
    func actionButton(_ label: String, path: String, request: PageRequest, fields: [String: String] = [:], danger: Bool = false) -> HTML {
        guard !configuration.readOnly else { return .empty }
        var hidden: HTML = "<input type=\"hidden\" name=\"csrf\" value=\"\(request.csrfToken)\"><input type=\"hidden\" name=\"back\" value=\"\(request.path)\">"
        for (name, value) in fields.sorted(by: { $0.key < $1.key }) {
            hidden += "<input type=\"hidden\" name=\"\(name)\" value=\"\(value)\">"
        }
        return "<form class=\"action\" method=\"post\" action=\"\(link(path))\">\(hidden)<button type=\"submit\" class=\"\(danger ? "danger" : "")\" data-action=\"\(label.lowercased())\">\(label)</button></form>"
    }
}
