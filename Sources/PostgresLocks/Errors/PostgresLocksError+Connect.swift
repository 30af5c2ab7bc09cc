#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import NIOCore
import PostgresNIO
import Synchronization

// MARK: - Codes for failures to connect

extension PostgresLocksError.Code {
    /// Nothing accepts connections at the server's address: the host answered, but no server
    /// listens on that port (or on that Unix socket file). The message names the host and port,
    /// or the socket path.
    public static let connectionRefused = Self("connectionRefused")
    /// The Unix socket file does not exist: no server runs locally with that socket folder and
    /// port. The message names the socket file's path.
    public static let socketNotFound = Self("socketNotFound")
    /// The host name could not be translated to an address. The message names the host.
    public static let unknownHost = Self("unknownHost")
    /// No connection was made within the connect timeout (the URL's `connect_timeout`, or
    /// PostgresNIO's 10 s): the host did not answer, or the server accepted but never spoke.
    /// The message names the host, the port and the timeout.
    public static let connectTimeout = Self("connectTimeout")
    /// The server refused the login (SQLSTATE 28P01, or 28000 for a refusal that is not a
    /// missing role): a wrong or missing password, or no `pg_hba.conf` entry. The message names
    /// the user and, when known, the method (`scram-sha-256`, `md5`, `password`, `peer`, …);
    /// never the password.
    public static let authenticationFailed = Self("authenticationFailed")
    /// The database named in the settings does not exist (SQLSTATE 3D000). The message names it.
    public static let databaseNotFound = Self("databaseNotFound")
    /// The role named in the settings does not exist (SQLSTATE 28000). The server says so only
    /// when no password is asked (`trust`, `peer`): with password methods a missing role reads
    /// as ``authenticationFailed``, so that role names cannot be probed.
    public static let roleNotFound = Self("roleNotFound")
    /// A connection could not be made for another reason: a network or host that cannot be
    /// reached, no permission on the socket file, a TLS handshake that failed, a server that
    /// closed the connection during startup, or a connection pool that gave up after its retries.
    public static let connectFailed = Self("connectFailed")
}

extension PostgresLocksError {
    /// Whether this error says that a connection could not be made at all (as opposed to one
    /// that was lost): a code from ``Code/connectionRefused`` to ``Code/connectFailed``,
    /// or ``Code/tlsUnavailable``.
    public var isConnectFailure: Bool {
        Self.connectFailureCodes.contains(code)
    }

    /// Whether this error may go away by itself when the same connection is tried again later
    /// (a server that restarts, a network that recovers): ``Code/connectionLost`` and the
    /// connect failures that a starting server causes (refused, no socket file, timeout).
    public var isConnectionUnavailable: Bool {
        code == .connectionLost || code == .connectionRefused || code == .socketNotFound || code == .connectTimeout
    }

    static let connectFailureCodes: Set<Code> = [
        .connectionRefused, .socketNotFound, .unknownHost, .connectTimeout, .authenticationFailed,
        .databaseNotFound, .roleNotFound, .connectFailed, .tlsUnavailable,
    ]
}

// MARK: - What a connection was made to

/// Where a connection was being made, for messages: never holds a password.
struct ConnectTarget: Sendable, Hashable {
    /// `host:port`, `[v6]:port`, or the socket file's path.
    var address: String
    /// The TCP host name, or nil for a Unix socket.
    var host: String?
    var port: Int
    /// The socket file, for a Unix socket.
    var socketPath: String?
    var user, database: String?
    /// The connect timeout in force.
    var connectTimeout: Duration?

    init(address: String, host: String?, port: Int, socketPath: String?, user: String?, database: String?, connectTimeout: Duration?) {
        self.address = address
        self.host = host
        self.port = port
        self.socketPath = socketPath
        self.user = user
        self.database = database
        self.connectTimeout = connectTimeout
    }

    init(_ settings: ConnectionSettings) {
        switch settings.host {
        case .tcp(let name):
            self.init(
                address: "\(settings.host):\(settings.port)", host: name, port: settings.port, socketPath: nil,
                user: settings.user, database: settings.database,
                connectTimeout: .seconds(settings.connectTimeoutSeconds ?? ConnectionSettings.driverConnectTimeoutSeconds)
            )
        case .unixSocketDirectory:
            let path = settings.unixSocketPath ?? "\(settings.host)"
            self.init(
                address: path, host: nil, port: settings.port, socketPath: path,
                user: settings.user, database: settings.database,
                connectTimeout: .seconds(settings.connectTimeoutSeconds ?? ConnectionSettings.driverConnectTimeoutSeconds)
            )
        }
    }

    /// "cannot connect to 127.0.0.1:5432" or "cannot connect to socket /run/postgresql/.s.PGSQL.5432".
    var cannotConnect: String {
        socketPath == nil ? "cannot connect to \(address)" : "cannot connect to socket \(address)"
    }

    /// ``cannotConnect`` with the user, for refusals of the login.
    var cannotConnectAsUser: String {
        guard let user else { return cannotConnect }
        return "\(cannotConnect) as user \"\(user)\""
    }
}

extension ConnectionSettings {
    /// PostgresNIO's connect timeout when the settings give none.
    static let driverConnectTimeoutSeconds = 10
}

// MARK: - Mapping

extension PostgresLocksError {
    /// Maps a failure to connect (`PSQLError.Code.connectionError`) to a typed error.
    ///
    /// Without the connection's settings, only what the driver's error carries is known: a
    /// TCP failure names the host and port it tried; a socket file, a timeout or a lost
    /// connection are described without them. `PSQLError.Code.connectionError` also reports
    /// socket errors of established connections: those stay ``Code/connectionLost``.
    static func connectFailure(_ error: PSQLError) -> PostgresLocksError {
        let causes = nestedErrors(error.underlying)
        let tried = causes.lazy.compactMap(TriedAddress.init).first
        let target = tried.map {
            ConnectTarget(address: $0.address, host: $0.host, port: $0.port, socketPath: nil, user: nil, database: nil, connectTimeout: nil)
        }
        if let typed = classifyTransportFailure(causes, target: target, underlying: error, connecting: false) {
            return typed
        }
        return PostgresLocksError(code: .connectionLost, message: "the connection to the server was lost (\(error.code))", underlying: error)
    }

    /// Maps a `ConnectionPoolError` (PostgresNIO's pool; its module is not public, so it is
    /// recognised by name): the circuit breaker that trips after 60 s of failed connects
    /// becomes ``Code/connectFailed``; anything else stays ``Code/connectionLost``.
    static func poolFailure(_ error: any Error) -> PostgresLocksError {
        if String(reflecting: error).contains("connectionCreationCircuitBreakerTripped") {
            return PostgresLocksError(
                code: .connectFailed,
                message: "the connection pool could not connect to the server: every attempt failed for 60 s, so it gave up",
                hint: "call ConnectionSettings.checkConnection(logger:) to see why; the pool logs each failed attempt at info level on its background logger",
                underlying: error
            )
        }
        return PostgresLocksError(code: .connectionLost, message: "the connection pool could not provide a connection: \(error)", underlying: error)
    }

    /// Maps any error thrown while a connection was being opened to `target`, naming the
    /// target (host and port, or socket path; the user for refused logins; never the password).
    ///
    /// - Parameter authenticationMethod: the method the server asked for, when it was seen
    ///   (`scram-sha-256`, `md5`, `password`).
    static func connectFailure(_ error: any Error, target: ConnectTarget, authenticationMethod: String?) -> any Error {
        switch error {
        case is CancellationError:
            return error
        case let psql as PSQLError:
            return connectFailure(psql, target: target, authenticationMethod: authenticationMethod)
        case let already as PostgresLocksError:
            return already
        default:
            let causes = [error] + nestedErrors(error)
            if let typed = classifyTransportFailure(causes, target: target, underlying: error, connecting: true) {
                return typed
            }
            return PostgresLocksError(code: .connectFailed, message: "\(target.cannotConnect): \(error)", underlying: error)
        }
    }

    private static func connectFailure(_ error: PSQLError, target: ConnectTarget, authenticationMethod: String?) -> PostgresLocksError {
        switch error.code {
        case .server:
            return serverRefusal(error, target: target, authenticationMethod: authenticationMethod)
        case .sslUnsupported:
            var mapped = PostgresLocksError(error)
            mapped.message = "\(target.cannotConnect): \(mapped.message)"
            return mapped
        case .authMechanismRequiresPassword, .unsupportedAuthMechanism, .saslError:
            let (problem, hint): (String, String?) = switch error.code {
            case .authMechanismRequiresPassword:
                ("the server asks for a password\(authenticationMethod.map { " (\($0))" } ?? "") and none was given",
                 "give the password in the URL, in its password parameter, or in PGPASSWORD")
            case .unsupportedAuthMechanism:
                ("the server asks for an authentication method\(authenticationMethod.map { " \($0)" } ?? "") this client does not support",
                 "use scram-sha-256, md5, password or trust for this user in the server's pg_hba.conf")
            default:
                ("\(authenticationMethod ?? "SASL") authentication failed (the exchange with the server did not complete)", nil)
            }
            return PostgresLocksError(code: .authenticationFailed, message: "\(target.cannotConnectAsUser): \(problem)", hint: hint, underlying: error)
        case .connectionError:
            let causes = nestedErrors(error.underlying)
            if let typed = classifyTransportFailure(causes, target: target, underlying: error, connecting: true) {
                return typed
            }
            let cause = error.underlying.map { String(describing: $0) } ?? "\(error.code)"
            let what = causes.contains(where: isTLSError) ? "TLS handshake failed: \(cause)" : cause
            return PostgresLocksError(code: .connectFailed, message: "\(target.cannotConnect): \(what)", underlying: error)
        case .serverClosedConnection, .uncleanShutdown:
            return PostgresLocksError(
                code: .connectFailed,
                message: "\(target.cannotConnect): the server closed the connection during startup",
                hint: "is this a PostgreSQL server (or a pooler in front of one), and does it accept this client's TLS settings?",
                underlying: error
            )
        default:
            var mapped = PostgresLocksError(error)
            mapped.message = "\(target.cannotConnect): \(mapped.message)"
            return mapped
        }
    }

    /// A server error during startup: a refused login, a missing database or role, or the
    /// server not accepting connections yet.
    private static func serverRefusal(_ error: PSQLError, target: ConnectTarget, authenticationMethod: String?) -> PostgresLocksError {
        let state = error.serverInfo?[.sqlState] ?? "XX000"
        let serverMessage = error.serverInfo?[.message] ?? "server error"
        let serverHint = error.serverInfo?[.hint]
        switch state {
        case "28P01":
            // Wrong password (password, md5 and scram-sha-256 all report 28P01). With password
            // methods a missing role reads the same, by design of the server.
            let method = authenticationMethod ?? "password"
            return PostgresLocksError(
                code: .authenticationFailed,
                message: "\(target.cannotConnectAsUser): \(method) authentication failed (server: \(serverMessage))",
                sqlState: state,
                hint: serverHint ?? "check the password (in the URL, its password parameter, or PGPASSWORD) and the server's pg_hba.conf",
                underlying: error
            )
        case "28000":
            if serverMessage.hasPrefix("role "), serverMessage.hasSuffix("does not exist") {
                return PostgresLocksError(
                    code: .roleNotFound,
                    message: "\(target.cannotConnectAsUser): \(serverMessage)",
                    sqlState: state,
                    hint: serverHint ?? "create the role (CREATE ROLE … LOGIN) or give another user in the URL",
                    underlying: error
                )
            }
            // "Peer authentication failed for user …", "no pg_hba.conf entry for host …", …
            let method = authenticationMethod ?? methodNamed(in: serverMessage)
            let prefix = method.map { "\($0) authentication failed" } ?? "the login was refused"
            return PostgresLocksError(
                code: .authenticationFailed,
                message: "\(target.cannotConnectAsUser): \(prefix) (server: \(serverMessage))",
                sqlState: state,
                hint: serverHint ?? "check the server's pg_hba.conf for this host, user and database",
                underlying: error
            )
        case "3D000":
            let name = target.database.map { "database \"\($0)\" does not exist" } ?? serverMessage
            return PostgresLocksError(
                code: .databaseNotFound,
                message: "\(target.cannotConnectAsUser): \(name)",
                sqlState: state,
                hint: serverHint ?? "create it (CREATE DATABASE) or name an existing database in the URL's path",
                underlying: error
            )
        default:
            // Too many connections (53300), the server starting up or shutting down (57P03), …:
            // the usual mapping, with the target.
            var mapped = PostgresLocksError(error)
            mapped.message = "\(target.cannotConnectAsUser): \(mapped.message)"
            return mapped
        }
    }

    /// The method a server's 28000 message names ("Peer authentication failed for user …").
    private static func methodNamed(in message: String) -> String? {
        guard let range = message.range(of: " authentication failed") else { return nil }
        let word = message[..<range.lowerBound]
        guard !word.isEmpty, !word.contains(" ") else { return nil }
        return word.lowercased()
    }

    /// Recognises the transport failures of a connect attempt among `causes`.
    ///
    /// - Parameter connecting: whether the error is known to come from a connect attempt; when
    ///   not, only failures that a connect attempt alone produces are recognised.
    private static func classifyTransportFailure(_ causes: [any Error], target: ConnectTarget?, underlying: any Error, connecting: Bool) -> PostgresLocksError? {
        let unknownTarget = ConnectTarget(address: "the server", host: nil, port: 0, socketPath: nil, user: nil, database: nil, connectTimeout: nil)
        let target = target ?? unknownTarget
        // A name that did not resolve.
        for case let unknown as SocketAddressError.UnknownHost in causes {
            return PostgresLocksError(
                code: .unknownHost,
                message: "\(target.cannotConnect): unknown host \"\(target.host ?? unknown.host)\": \(unknown.errorDescription)",
                hint: "check the host name: it could not be translated to an address",
                underlying: underlying
            )
        }
        // The connect timeout.
        for case let channel as ChannelError in causes {
            if case .connectTimeout(let amount) = channel {
                let limit = target.connectTimeout ?? .nanoseconds(amount.nanoseconds)
                return PostgresLocksError(
                    code: .connectTimeout,
                    message: "\(target.cannotConnect): no connection within the connect timeout (\(formatSeconds(limit)))",
                    hint: "is the host reachable, the port right, the server not overloaded? connect_timeout in the URL sets the limit",
                    underlying: underlying
                )
            }
        }
        // Socket errors of the connect(2) call.
        for case let io as IOError in causes where connecting || isConnectCall(io) {
            switch io.errnoCode {
            case ECONNREFUSED:
                return PostgresLocksError(
                    code: .connectionRefused,
                    message: "\(target.cannotConnect): connection refused",
                    hint: target.socketPath == nil
                        ? "is the server running and accepting TCP connections on that host and port?"
                        : "is the server running? The socket file exists, but nothing accepts connections on it",
                    underlying: underlying
                )
            case ENOENT where target.socketPath != nil || !connecting:
                return PostgresLocksError(
                    code: .socketNotFound,
                    message: "\(target.cannotConnect): no such socket file",
                    hint: "is the server running locally and accepting connections on that socket? The host is the socket's folder; the port names the file",
                    underlying: underlying
                )
            case EACCES, EPERM:
                return PostgresLocksError(code: .connectFailed, message: "\(target.cannotConnect): permission denied", underlying: underlying)
            case ENETUNREACH, EHOSTUNREACH, EHOSTDOWN, ENETDOWN:
                return PostgresLocksError(
                    code: .connectFailed,
                    message: "\(target.cannotConnect): \(String(cString: strerror(io.errnoCode)).lowercased())",
                    hint: "check the host and the network between here and the server",
                    underlying: underlying
                )
            case ETIMEDOUT:
                return PostgresLocksError(
                    code: .connectTimeout,
                    message: "\(target.cannotConnect): the operating system's connect timed out",
                    underlying: underlying
                )
            default:
                if connecting {
                    return PostgresLocksError(
                        code: .connectFailed,
                        message: "\(target.cannotConnect): \(String(cString: strerror(io.errnoCode)).lowercased())",
                        underlying: underlying
                    )
                }
            }
        }
        return nil
    }

    /// Whether an `IOError` comes from the `connect` system call (not a read or write of an
    /// established connection).
    private static func isConnectCall(_ error: IOError) -> Bool {
        String(describing: error).hasPrefix("connect")
    }

    private static func isTLSError(_ error: any Error) -> Bool {
        let type = String(reflecting: Swift.type(of: error))
        return type.contains("SSL") || type.contains("TLS")
    }
}

/// The host and port a TCP connect attempt tried (from NIO's connection error, read by
/// reflection so this module does not depend on NIOPosix).
private struct TriedAddress {
    var host: String
    var port: Int
    var address: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    init?(_ error: any Error) {
        guard String(describing: type(of: error)) == "NIOConnectionError" else { return nil }
        var host: String?
        var port: Int?
        for child in Mirror(reflecting: error).children {
            if child.label == "host" { host = child.value as? String }
            if child.label == "port" { port = child.value as? Int }
        }
        guard let host, let port else { return nil }
        self.host = host
        self.port = port
    }
}

/// Every error nested in `error` (its stored properties, optionals and arrays, a few levels
/// deep), `error` itself first: NIO reports a failed TCP connect as one error holding the DNS
/// errors and one error per address tried.
func nestedErrors(_ error: (any Error)?) -> [any Error] {
    guard let error else { return [] }
    var found: [any Error] = [error]
    func visit(_ value: Any, depth: Int) {
        guard depth < 5, found.count < 32 else { return }
        for child in Mirror(reflecting: value).children {
            if let nested = child.value as? any Error {
                found.append(nested)
            }
            let display = Mirror(reflecting: child.value).displayStyle
            if display == .optional || display == .collection || display == .struct || display == .enum || display == .tuple {
                visit(child.value, depth: depth + 1)
            }
        }
    }
    visit(error, depth: 0)
    return found
}

/// "10 s", "1.5 s", "250 ms".
func formatSeconds(_ duration: Duration) -> String {
    let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    if milliseconds % 1000 == 0 { return "\(milliseconds / 1000) s" }
    if milliseconds < 1000 { return "\(milliseconds) ms" }
    return "\(Double(milliseconds) / 1000) s"
}

// MARK: - Seeing the authentication method

/// Watches a connection's startup for the authentication request the server sends, so that
/// a refused login can name the method. It wraps the caller's log handler: while the startup
/// runs it lowers the level to `trace` (PostgresNIO logs each backend message at trace) and
/// passes on only what the caller's level lets through; afterwards it is the caller's handler.
final class StartupObserver: Sendable {
    // Read on every log call of the connection (an atomic load once the startup is over).
    private let active = Atomic<Bool>(true)
    private let method = Mutex<String?>(nil)

    /// The method the server asked for, if it asked.
    var authenticationMethod: String? { method.withLock { $0 } }

    var isWatching: Bool { active.load(ordering: .relaxed) }

    /// Ends the watch: from now on the logger behaves exactly like the caller's.
    func finish() { active.store(false, ordering: .relaxed) }

    func observe(_ event: LogEvent) {
        guard let text = event.metadata?["psql_message"].map({ "\($0)" }), text.hasPrefix(".authentication(") else { return }
        let method: String?
        if text.hasPrefix(".authentication(.sasl") {
            method = text.contains("SCRAM-SHA-256") ? "scram-sha-256" : "SASL"
        } else if text.hasPrefix(".authentication(.md5") {
            method = "md5"
        } else if text.hasPrefix(".authentication(.plaintext") {
            method = "password"
        } else if text.hasPrefix(".authentication(.gss") || text.hasPrefix(".authentication(.sspi") || text.hasPrefix(".authentication(.kerberos") {
            method = "gss"
        } else {
            method = nil
        }
        if let method { self.method.withLock { if $0 == nil { $0 = method } } }
    }

    /// `logger`, watched by this observer.
    func watching(_ logger: Logger) -> Logger {
        var watched = logger
        watched.handler = ObservingLogHandler(base: logger.handler, observer: self)
        return watched
    }
}

private struct ObservingLogHandler: LogHandler {
    var base: any LogHandler
    let observer: StartupObserver

    var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { base.metadataProvider }
        set { base.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    var logLevel: Logger.Level {
        get { observer.isWatching ? .trace : base.logLevel }
        set { base.logLevel = newValue }
    }

    func log(event: LogEvent) {
        if observer.isWatching { observer.observe(event) }
        if event.level >= base.logLevel { base.log(event: event) }
    }
}
