import Hummingbird
import HTTPTypes

/// The console's middleware: signs the user in, refuses cross-site and unsigned writes, sends
/// the security headers on every answer, and turns errors into plain pages.
struct ConsoleMiddleware<Context: RequestContext>: RouterMiddleware {
    let console: WebConsole

    /// The Content-Security-Policy of every answer: the console's own stylesheet, script and
    /// forms only; no inline script or style, no frames, no other origin.
    static var contentSecurityPolicy: String {
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        var response: Response
        if !console.configuration.authentication.isRequired, let refusal = Self.loopbackRefusal(request, context: context) {
            response = console.errorPage(refusal)
        } else if let actor = console.configuration.authentication.actor(authorization: request.headers[.authorization]) {
            do {
                if request.method == .post, let refusal = refusal(of: request) { throw refusal }
                response = try await ConsoleRequest.$actor.withValue(actor) { try await next(request, context) }
            } catch let error as WebConsoleError {
                response = console.errorPage(error)
            } catch let error as HTTPError {
                response = console.errorPage(WebConsoleError(code: error.status == .notFound ? .notFound : .badRequest, message: error.body ?? "\(error.status)"))
                response.status = error.status
            } catch {
                console.logger.error("pglock web: a page failed", metadata: ["error": .error(error)])
                response = console.errorPage(WebConsoleError(code: .badRequest, message: "the page could not be read from the database; the console's log says why"))
                response.status = .internalServerError
            }
        } else {
            response = Response(status: .unauthorized, headers: [.wwwAuthenticate: "Basic realm=\"pglock web\", charset=\"UTF-8\""],
                                body: ResponseBody(byteBuffer: ByteBuffer(string: "Sign-in required.\n")))
        }
        // The server's time for this answer, for operators and `pglock bench web`.
        let elapsed = ContinuousClock.now - started
        let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        response.headers[HTTPField.Name("Server-Timing")!] = "app;dur=\((milliseconds * 10).rounded() / 10)"
        response.headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        return response
    }

    /// Without sign-in the console answers loopback only: a request must name a loopback host
    /// (which defeats DNS rebinding, where another site's name points at 127.0.0.1) and, when
    /// the request context knows it, come from a loopback address.
    static func loopbackRefusal(_ request: Request, context: Context) -> WebConsoleError? {
        // The authority (HTTP/1.1's Host) and any Host field must both name this machine.
        let hosts = [request.head.authority ?? ""] + request.headers[values: HTTPField.Name("Host")!]
        guard hosts.allSatisfy({ LoopbackHost.isLoopback(authority: $0) }) else {
            return WebConsoleError(code: .forbidden, message: "without sign-in this console answers only requests addressed to 127.0.0.1, ::1 or localhost")
        }
        if let remote = (context as? any RemoteAddressRequestContext)?.remoteAddress, let ip = remote.ipAddress,
           !LoopbackHost.isLoopback(host: ip) {
            return WebConsoleError(code: .forbidden, message: "without sign-in this console answers only this machine")
        }
        return nil
    }

    /// Why a POST is refused before it reaches an action: from another site (by `Origin` or
    /// `Sec-Fetch-Site`), or on a read-only console.
    func refusal(of request: Request) -> WebConsoleError? {
        if console.configuration.readOnly {
            return WebConsoleError(code: .forbidden, message: "this console is read-only")
        }
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!], site == "cross-site" || site == "same-site" {
            return WebConsoleError(code: .forbidden, message: "a request from another site was refused")
        }
        if let origin = request.headers[.origin], origin != "null" {
            let host = request.head.authority ?? ""
            let originHost = origin.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first.map(String.init) ?? ""
            if originHost != host {
                return WebConsoleError(code: .forbidden, message: "a request from another origin was refused")
            }
        }
        return nil
    }
}

/// What the middleware learnt about the request, for the handlers.
enum ConsoleRequest {
    /// The signed-in user's name (`local` without sign-in, `token` for a token).
    @TaskLocal static var actor = "local"
}
