import Crypto
import Foundation
import Hummingbird
import Logging
import PostgresLocks
import PostgresNIO
import PostgresQueue

/// A web console for locks, queues, leaders and the doctor's findings, on Hummingbird: mount it
/// on your application's router with your own `PostgresClient`, or run it with `pglock web`.
///
/// ```swift
/// let console = try WebConsole(client: client, configuration: .init(mountPath: "/ops"), logger: logger)
/// let router = Router()
/// console.addRoutes(to: router)
/// ```
///
/// Pages are rendered on the server, refresh themselves with a small script shipped as a
/// package resource, and send a strict Content-Security-Policy. Every value read from the
/// database is escaped. Actions are POST requests carrying a CSRF token, each confirmed on a
/// page of its own and logged with the name of whoever did it.
public struct WebConsole: Sendable {
    /// The client the pages read through.
    public let client: PostgresClient
    /// What the console shows and allows.
    public let configuration: Configuration
    /// Where actions and failures are logged.
    public let logger: Logger
    let mountPath: String
    let queues: [JobQueue]
    let csrfKey: SymmetricKey
    let knownNames: [LockKey: String]

    /// A console reading through `client`.
    ///
    /// - Throws: ``WebConsoleError`` (`invalidConfiguration`) for a mount path that is not
    ///   `""` or `/segment/…`, an invalid queue schema name, or no queue schema.
    public init(client: PostgresClient, configuration: Configuration = Configuration(), logger: Logger) throws {
        do {
            self.queues = try configuration.queueSchemas.map { try JobQueue(schema: $0) }
        } catch {
            throw WebConsoleError(code: .invalidConfiguration, message: "a queue schema name is invalid: \(error)")
        }
        self.client = client
        self.configuration = configuration
        self.logger = logger
        self.mountPath = try Self.validateMountPath(configuration.mountPath)
        self.csrfKey = SymmetricKey(size: .bits256)
        var names: [LockKey: String] = [:]
        for name in configuration.knownLockNames { names[.hashed(name)] = name }
        self.knownNames = names
    }

    /// Registers the console's pages, assets and actions on `router`, under
    /// ``Configuration/mountPath``, behind the console's own middleware (sign-in, CSRF,
    /// security headers), which applies to these routes only.
    public func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        let group = router.group(RouterPath(mountPath.isEmpty ? "" : mountPath)).add(middleware: ConsoleMiddleware<Context>(console: self))
        let console = self
        group.get { _, _ in Response(status: .seeOther, headers: [.location: console.link("/locks")]) }
        group.get("assets/:name") { _, context in try console.asset(named: context.parameters.require("name")) }
        group.get("locks") { request, _ in try await console.page(request) { try await console.locksPage($0) } }
        group.get("queues") { request, _ in try await console.page(request) { try await console.queuesPage($0) } }
        group.get("jobs") { request, _ in try await console.page(request) { try await console.jobsPage($0) } }
        group.get("jobs/:id") { request, context in
            let id = try console.requireID(context.parameters.get("id"))
            return try await console.page(request) { try await console.jobPage(id: id, $0) }
        }
        group.get("leaders") { request, _ in try await console.page(request) { try await console.leadersPage($0) } }
        group.get("doctor") { request, _ in try await console.page(request) { try await console.doctorPage($0) } }
        group.post("jobs/:id/:action") { request, context in
            let id = try console.requireID(context.parameters.get("id"))
            return try await console.act(request, action: try console.jobAction(context.parameters.get("action")), target: .job(id))
        }
        group.post("queues/:queue/:action") { request, context in
            // Route parameters arrive percent-encoded, as the page's links wrote them.
            let encoded = try context.parameters.require("queue")
            guard let queue = encoded.removingPercentEncoding else { throw WebConsoleError(code: .badRequest, message: "a queue name is badly encoded") }
            return try await console.act(request, action: try console.queueAction(context.parameters.get("action")), target: .queue(queue))
        }
        group.post("backends/:pid/:action") { request, context in
            guard let pid = context.parameters.get("pid").flatMap(Int32.init), pid > 0 else {
                throw WebConsoleError(code: .badRequest, message: "a backend is named by its process id")
            }
            return try await console.act(request, action: try console.backendAction(context.parameters.get("action")), target: .backend(pid))
        }
    }

    /// The mount path without a trailing slash, checked: empty, or `/segment[/segment…]` of
    /// letters, digits, `-`, `_` and `.` (not `.` or `..` alone).
    static func validateMountPath(_ text: String) throws(WebConsoleError) -> String {
        var path = text
        while path.hasSuffix("/") { path.removeLast() }
        let valid = path.isEmpty || (path.hasPrefix("/") && path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).allSatisfy { segment in
            !segment.isEmpty && segment != "." && segment != ".." && segment.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
        })
        guard valid else {
            throw WebConsoleError(code: .invalidConfiguration, message: "the mount path \(text) must be empty or /segment[/segment…] of letters, digits, -, _ and .")
        }
        return path
    }

    /// An absolute path within the console.
    func link(_ path: String) -> String { mountPath + path }

    func requireID(_ text: String?) throws -> Int64 {
        guard let text, let id = Int64(text), id > 0 else { throw WebConsoleError(code: .badRequest, message: "a job is named by its numeric id") }
        return id
    }

    func asset(named name: String) throws -> Response {
        guard let file = ConsoleAssets.shared.files[name] else { throw WebConsoleError(code: .notFound, message: "no asset \(name)") }
        return Response(
            status: .ok,
            headers: [.contentType: file.contentType, .cacheControl: "max-age=300"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: file.bytes))
        )
    }

    /// The CSRF token of a signed-in user: an HMAC of the user's name under this console's
    /// key (new at every start).
    func csrfToken(for actor: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data(actor.utf8), using: csrfKey)
        return Data(mac).base64EncodedString()
    }

    /// Whether `token` is `actor`'s CSRF token (compared in constant time).
    func isValidCSRFToken(_ token: String, for actor: String) -> Bool {
        guard let data = Data(base64Encoded: token) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(data, authenticating: Data(actor.utf8), using: csrfKey)
    }
}
