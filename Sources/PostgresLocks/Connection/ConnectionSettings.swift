#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import NIOSSL
import PostgresNIO

/// Where and how to connect, resolved like libpq does: a `postgres://` URL, then the `PG*`
/// environment variables for whatever the URL leaves out, then libpq's defaults.
///
/// ```swift
/// let settings = try ConnectionSettings(url: "postgres://app:secret@db.internal:5432/orders?sslmode=require")
/// let client = PostgresClient(configuration: try settings.makeClientConfiguration(), backgroundLogger: logger)
/// ```
///
/// Supported URL forms: `postgres://` and `postgresql://`; user and password (percent-decoded);
/// a host name, an IPv4 address, an `[IPv6]` address, or a Unix-socket folder (a host that
/// starts with `/`, percent-encoded as `%2F…` or given as `?host=/path`); port; database;
/// query parameters `host`, `port`, `user`, `password`, `dbname`, `sslmode`
/// (`disable`, `allow`, `prefer`, `require`, `verify-ca`, `verify-full`), `sslrootcert`,
/// `application_name`, `connect_timeout`.
///
/// Vapor's PostgresKit forms are read too, with PostgresKit's meanings: `postgres+tcp://`,
/// `postgres+uds://user@localhost/path/.s.PGSQL.5432#database` (the socket file; the database
/// in the fragment), and `tlsmode=` (or `tls=`, `ssl=`) with `disable`/`false`,
/// `prefer`/`allow`/`true`, `require`/`verify-ca`/`verify-full`, where a required TLS
/// connection is always verified (`verify-full`). `sslmode=require` keeps libpq's meaning
/// (encrypted, not verified).
///
/// The ``description`` never shows the password.
public struct ConnectionSettings: Sendable, Hashable, CustomStringConvertible {
    /// libpq's `sslmode`.
    public enum SSLMode: String, Sendable, Hashable, CaseIterable {
        /// No TLS.
        case disable
        /// TLS if the server insists; treated like `prefer` by this library.
        case allow
        /// TLS if the server offers it, without verifying the certificate.
        case prefer
        /// TLS required; the certificate is not verified (as libpq does without a root certificate).
        case require
        /// TLS required; the certificate must chain to `sslrootcert` (host name not checked).
        case verifyCA = "verify-ca"
        /// TLS required; the certificate must chain to `sslrootcert` and match the host name.
        case verifyFull = "verify-full"
    }

    /// A host name or address (TCP), or a folder holding the server's Unix socket.
    public enum Host: Sendable, Hashable, CustomStringConvertible {
        /// A host name or an IP address, reached over TCP.
        case tcp(String)
        /// A folder holding the socket file `.s.PGSQL.<port>`.
        case unixSocketDirectory(String)

        public var description: String {
            switch self {
            case .tcp(let host): return host.contains(":") ? "[\(host)]" : host
            case .unixSocketDirectory(let directory): return directory
            }
        }
    }

    /// Where the server is.
    public var host: Host
    /// The TCP port, also used to name the Unix socket file.
    public var port: Int
    /// The user to log in as.
    public var user: String
    /// The password, if any. Never printed.
    public var password: String?
    /// The database to connect to.
    public var database: String
    /// TLS use and verification.
    public var sslMode: SSLMode
    /// A PEM file of trusted root certificates for `verify-ca` and `verify-full`.
    public var sslRootCertificatePath: String?
    /// Shown in `pg_stat_activity.application_name`. When `nil`, the library names its sessions
    /// `<role> <instance>` (``effectiveApplicationName``): `postgres-locks <instance>` for
    /// clients made from these settings, `pglocks-leader <instance>` for a ``LeaderElection``,
    /// `pglocks-locks <instance>` for a ``SessionLockPool``; the instance is
    /// ``ServiceInstance/current`` (a leader uses its ``LeaderElection/Configuration/instanceID``),
    /// and the whole name is cut to 63 bytes at a character boundary. Set it (or the URL's
    /// `application_name`, or `PGAPPNAME`) to use a name of your own, sent as it is.
    public var applicationName: String?
    /// How long to wait for a connection, in seconds.
    public var connectTimeoutSeconds: Int?

    /// Creates settings from explicit values.
    public init(
        host: Host,
        port: Int = 5432,
        user: String,
        password: String? = nil,
        database: String? = nil,
        sslMode: SSLMode = .prefer,
        sslRootCertificatePath: String? = nil,
        applicationName: String? = nil,
        connectTimeoutSeconds: Int? = nil
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database ?? user
        self.sslMode = sslMode
        self.sslRootCertificatePath = sslRootCertificatePath
        self.applicationName = applicationName
        self.connectTimeoutSeconds = connectTimeoutSeconds
    }

    /// The path of the Unix socket file, if the host is a socket folder.
    public var unixSocketPath: String? {
        if case .unixSocketDirectory(let directory) = host {
            let trimmed = directory.hasSuffix("/") && directory.count > 1 ? String(directory.dropLast()) : directory
            return "\(trimmed)/.s.PGSQL.\(port)"
        }
        return nil
    }

    /// The settings as a URL with the password replaced by `***`.
    public var redactedURL: String {
        var text = "postgresql://\(percentEncode(user, allowing: Self.userInfoSafe))"
        if password != nil { text += ":***" }
        text += "@"
        var query: [String] = []
        switch host {
        case .tcp(let name):
            text += (name.contains(":") ? "[\(name)]" : name) + ":\(port)"
        case .unixSocketDirectory(let directory):
            query.append("host=\(percentEncode(directory, allowing: Self.pathSafe))")
            query.append("port=\(port)")
        }
        text += "/" + percentEncode(database, allowing: Self.pathSafe)
        if sslMode != .prefer { query.append("sslmode=\(sslMode.rawValue)") }
        if let applicationName { query.append("application_name=\(percentEncode(applicationName, allowing: Self.pathSafe))") }
        if !query.isEmpty { text += "?" + query.joined(separator: "&") }
        return text
    }

    public var description: String { redactedURL }
}

// MARK: - Resolving from the environment

extension ConnectionSettings {
    /// The variable that holds a connection URL.
    public static let urlVariable = "DATABASE_URL"

    /// Settings from `DATABASE_URL` if it is set, otherwise from the `PG*` variables and libpq's defaults.
    ///
    /// - Parameter environment: the process environment (pass your own in tests).
    public static func fromEnvironment(_ environment: [String: String]) throws(ConnectionSettingsError) -> ConnectionSettings {
        if let url = environment[urlVariable], !url.isEmpty {
            return try ConnectionSettings(url: url, environment: environment)
        }
        return try ConnectionSettings(url: "postgresql://", environment: environment)
    }

    /// Parses a connection URL; parts it leaves out come from the `PG*` variables in `environment`,
    /// then from libpq's defaults (Unix socket in `/var/run/postgresql`, port 5432, the OS user).
    public init(url: String, environment: [String: String] = [:]) throws(ConnectionSettingsError) {
        var parsed = try URLParts.parse(url)
        try parsed.applyDefaults(from: environment)
        self = try parsed.settings()
    }
}

/// The pieces of a URL before defaults are applied.
struct URLParts {
    var user: String?
    var password: String?
    var host: ConnectionSettings.Host?
    var port: Int?
    var database: String?
    var sslMode: ConnectionSettings.SSLMode?
    var sslRootCertificatePath: String?
    var applicationName: String?
    var connectTimeoutSeconds: Int?

    static func parse(_ url: String) throws(ConnectionSettingsError) -> URLParts {
        var parts = URLParts()
        var rest: Substring
        var overUnixSocket = false
        if let schemeEnd = url.range(of: "://") {
            switch url[..<schemeEnd.lowerBound].lowercased() {
            case "postgres", "postgresql", "postgres+tcp", "postgresql+tcp":
                break
            case "postgres+uds", "postgresql+uds":
                overUnixSocket = true
            default:
                let shown = "'\(url[..<schemeEnd.lowerBound])'"
                throw ConnectionSettingsError(code: .unknownScheme, part: "scheme", message: "the URL must start with postgres://, postgresql://, postgres+tcp:// or postgres+uds:// (scheme found: \(shown))")
            }
            rest = url[schemeEnd.upperBound...]
        } else {
            let scheme = url.firstIndex(of: ":").map { String(url[..<$0]) }
            let shown = scheme.map { "'\($0)'" } ?? "none"
            throw ConnectionSettingsError(code: .unknownScheme, part: "scheme", message: "the URL must start with postgres://, postgresql://, postgres+tcp:// or postgres+uds:// (scheme found: \(shown))")
        }
        // `postgres+uds://user@localhost/path/to/.s.PGSQL.5432?…#database`: the socket file's
        // path, the database in the fragment.
        var fragment: Substring?
        if overUnixSocket, let hash = rest.firstIndex(of: "#") {
            fragment = rest[rest.index(after: hash)...]
            rest = rest[..<hash]
        }
        // Split off the query.
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        // Split authority and path.
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        // User info: the last '@' separates it (a password may contain '@' only percent-encoded, but be lenient).
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                parts.user = try nonEmpty(decode(userInfo[..<colon], part: "user"))
                parts.password = try decode(userInfo[userInfo.index(after: colon)...], part: "password")
            } else {
                parts.user = try nonEmpty(decode(userInfo, part: "user"))
            }
        }
        // Host and port.
        if rest.contains(",") {
            throw ConnectionSettingsError(code: .unsupported, part: "host", message: "several hosts in one URL are not supported; give one host")
        }
        var hostText: Substring = rest
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                throw ConnectionSettingsError(code: .invalidHost, part: "host", message: "an IPv6 address opened with '[' is not closed with ']'")
            }
            hostText = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                portText = after.dropFirst()
            } else if !after.isEmpty {
                throw ConnectionSettingsError(code: .invalidHost, part: "host", message: "unexpected text after the IPv6 address")
            }
            parts.host = .tcp(String(hostText))
        } else {
            if let colon = rest.lastIndex(of: ":") {
                hostText = rest[..<colon]
                portText = rest[rest.index(after: colon)...]
            }
            let decodedHost = try decode(hostText, part: "host")
            if !decodedHost.isEmpty {
                parts.host = decodedHost.hasPrefix("/") ? .unixSocketDirectory(decodedHost) : .tcp(decodedHost)
            }
        }
        if overUnixSocket {
            try parts.setUnixSocket(host: parts.host, port: portText, path: path, fragment: fragment)
        } else {
            if let portText {
                parts.port = try parsePort(String(portText), part: "port")
            }
            if !path.isEmpty {
                parts.database = try decode(path, part: "database")
            }
        }
        // Query parameters.
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let (rawKey, rawValue): (Substring, Substring)
            if let equals = pair.firstIndex(of: "=") {
                rawKey = pair[..<equals]
                rawValue = pair[pair.index(after: equals)...]
            } else {
                rawKey = pair
                rawValue = ""
            }
            let key = try decode(rawKey, part: "query parameter name")
            let value = try decode(rawValue, part: key == "password" ? "password" : "query parameter \(key)")
            try parts.set(parameter: key, value: value, source: "query parameter \(key)")
        }
        return parts
    }

    /// The host, port and database of a `postgres+uds://` URL: the authority is empty or
    /// `localhost` without a port, the path is the socket file (named `.s.PGSQL.<port>`, as
    /// the server names it), the fragment the database.
    mutating func setUnixSocket(host: ConnectionSettings.Host?, port: Substring?, path: Substring, fragment: Substring?) throws(ConnectionSettingsError) {
        if let host, host != .tcp("localhost") {
            throw ConnectionSettingsError(code: .invalidHost, part: "host", message: "a postgres+uds:// URL names no host (or localhost); the socket's path goes in the URL's path")
        }
        if port != nil {
            throw ConnectionSettingsError(code: .invalidPort, part: "port", message: "a postgres+uds:// URL takes no port; the socket file's name carries it")
        }
        let file = "/" + (try decode(path, part: "socket path"))
        let name = file.split(separator: "/").last.map(String.init) ?? ""
        guard name.hasPrefix(".s.PGSQL."), let number = Int(name.dropFirst(".s.PGSQL.".count)), (1...65_535).contains(number) else {
            throw ConnectionSettingsError(code: .invalidHost, part: "socket path", message: "the socket file of a postgres+uds:// URL must be named .s.PGSQL.<port> (found '\(file)')")
        }
        self.host = .unixSocketDirectory(String(file.dropLast(name.count + 1)))
        self.port = number
        if let fragment, !fragment.isEmpty {
            database = try decode(fragment, part: "database")
        }
    }

    /// Sets a libpq keyword (from a URL query or an environment variable).
    mutating func set(parameter key: String, value: String, source: String) throws(ConnectionSettingsError) {
        switch key {
        case "host":
            if value.isEmpty { return }
            if value.contains(",") {
                throw ConnectionSettingsError(code: .unsupported, part: source, message: "several hosts are not supported; give one host")
            }
            host = value.hasPrefix("/") ? .unixSocketDirectory(value) : .tcp(value)
        case "port":
            port = try parsePort(value, part: source)
        case "user":
            user = value.isEmpty ? nil : value
        case "password":
            password = value
        case "dbname":
            database = value.isEmpty ? nil : value
        case "tlsmode", "tls", "ssl":
            // The names of Vapor's PostgresKit, with its meanings: a required TLS connection is
            // always verified there, so `require` means `verify-full` here too.
            switch value {
            case "disable", "false": sslMode = .disable
            case "prefer", "allow", "true": sslMode = .prefer
            case "require", "verify-ca", "verify-full": sslMode = .verifyFull
            default:
                throw ConnectionSettingsError(code: .invalidParameterValue, part: source, message: "\(key) must be one of disable, false, prefer, allow, true, require, verify-ca, verify-full; found '\(value)'")
            }
        case "sslmode":
            guard let mode = ConnectionSettings.SSLMode(rawValue: value) else {
                let allowed = ConnectionSettings.SSLMode.allCases.map(\.rawValue).joined(separator: ", ")
                throw ConnectionSettingsError(code: .invalidParameterValue, part: source, message: "sslmode must be one of \(allowed); found '\(value)'")
            }
            sslMode = mode
        case "sslrootcert":
            sslRootCertificatePath = value.isEmpty ? nil : value
        case "application_name":
            applicationName = value
        case "connect_timeout":
            guard let seconds = Int(value), seconds >= 0, seconds <= 86_400 else {
                throw ConnectionSettingsError(code: .invalidParameterValue, part: source, message: "connect_timeout must be a whole number of seconds from 0 to 86400; found '\(value)'")
            }
            connectTimeoutSeconds = seconds == 0 ? nil : seconds
        default:
            throw ConnectionSettingsError(code: .unknownParameter, part: source, message: "unknown connection parameter '\(key)'")
        }
    }

    /// Fills what the URL left out from the `PG*` variables.
    mutating func applyDefaults(from environment: [String: String]) throws(ConnectionSettingsError) {
        var fromEnvironment = URLParts()
        let variables: [(String, String)] = [
            ("PGHOST", "host"), ("PGPORT", "port"), ("PGUSER", "user"), ("PGPASSWORD", "password"),
            ("PGDATABASE", "dbname"), ("PGSSLMODE", "sslmode"), ("PGSSLROOTCERT", "sslrootcert"),
            ("PGAPPNAME", "application_name"), ("PGCONNECT_TIMEOUT", "connect_timeout"),
        ]
        for (variable, keyword) in variables {
            if let value = environment[variable], !value.isEmpty {
                try fromEnvironment.set(parameter: keyword, value: value, source: variable)
            }
        }
        host = host ?? fromEnvironment.host
        port = port ?? fromEnvironment.port
        user = user ?? fromEnvironment.user
        password = password ?? fromEnvironment.password
        database = database ?? fromEnvironment.database
        sslMode = sslMode ?? fromEnvironment.sslMode
        sslRootCertificatePath = sslRootCertificatePath ?? fromEnvironment.sslRootCertificatePath
        applicationName = applicationName ?? fromEnvironment.applicationName
        connectTimeoutSeconds = connectTimeoutSeconds ?? fromEnvironment.connectTimeoutSeconds
    }

    func settings() throws(ConnectionSettingsError) -> ConnectionSettings {
        let user = self.user ?? currentUserName()
        return ConnectionSettings(
            host: host ?? .unixSocketDirectory("/var/run/postgresql"),
            port: port ?? 5432,
            user: user,
            password: password,
            database: database ?? user,
            sslMode: sslMode ?? .prefer,
            sslRootCertificatePath: sslRootCertificatePath,
            applicationName: applicationName,
            connectTimeoutSeconds: connectTimeoutSeconds
        )
    }
}

private func nonEmpty(_ value: String) -> String? { value.isEmpty ? nil : value }

private func parsePort(_ text: String, part: String) throws(ConnectionSettingsError) -> Int {
    guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), text.count <= 5, let port = Int(text), (1...65535).contains(port) else {
        throw ConnectionSettingsError(code: .invalidPort, part: part, message: "the port must be a number from 1 to 65535; found '\(text)'")
    }
    return port
}

/// Percent-decodes one URL part; the message never echoes the text of a password.
func decode(_ text: Substring, part: String) throws(ConnectionSettingsError) -> String {
    guard text.contains("%") else { return String(text) }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(text.utf8.count)
    var iterator = Array(text.utf8).makeIterator()
    func hexValue(_ byte: UInt8?) -> UInt8? {
        guard let byte else { return nil }
        switch byte {
        case 0x30...0x39: return byte - 0x30
        case 0x41...0x46: return byte - 0x41 + 10
        case 0x61...0x66: return byte - 0x61 + 10
        default: return nil
        }
    }
    var offset = 0
    while let byte = iterator.next() {
        if byte == 0x25 {
            guard let high = hexValue(iterator.next()), let low = hexValue(iterator.next()) else {
                throw ConnectionSettingsError(code: .invalidPercentEncoding, part: part, message: "a '%' at character \(offset) of the \(part) is not followed by two hex digits")
            }
            bytes.append(high << 4 | low)
            offset += 3
        } else {
            bytes.append(byte)
            offset += 1
        }
    }
    guard let decoded = String(validating: bytes, as: UTF8.self) else {
        throw ConnectionSettingsError(code: .invalidPercentEncoding, part: part, message: "the percent-escapes in the \(part) do not decode to UTF-8 text")
    }
    if decoded.utf8.contains(0) {
        throw ConnectionSettingsError(code: .invalidPercentEncoding, part: part, message: "the \(part) contains a NUL byte")
    }
    return decoded
}

private func currentUserName() -> String {
    if let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name {
        return String(cString: name)
    }
    return "postgres"
}

extension ConnectionSettings {
    static let userInfoSafe: Set<UInt8> = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)
    static let pathSafe: Set<UInt8> = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/".utf8)
}

func percentEncode(_ text: String, allowing safe: Set<UInt8>) -> String {
    var result = ""
    for byte in text.utf8 {
        if safe.contains(byte) {
            result.append(Character(Unicode.Scalar(byte)))
        } else {
            let hex = String(byte, radix: 16, uppercase: true)
            result += "%" + (hex.count == 1 ? "0" + hex : hex)
        }
    }
    return result
}

// MARK: - PostgresNIO configuration

extension ConnectionSettings {
    /// The first word of the `application_name` used when none is given: the name is
    /// `postgres-locks <instance>` (see ``effectiveApplicationName``).
    public static let defaultApplicationName = "postgres-locks"

    /// A `PostgresClient` configuration for these settings, with at most `poolSize`
    /// connections, in the pool the library recommends: its memory does not grow with the
    /// calls it serves, and it survives a server restart (see
    /// ``PostgresNIO/PostgresClient/Configuration/Options/useRecommendedPool(connections:idleTimeout:)``
    /// and the `PoolConfiguration` article). To change the size afterwards, set
    /// `maximumConnections`; keep `minimumConnections` at 0.
    ///
    /// TLS follows `sslMode`: `disable` turns it off; `allow`/`prefer` use it when offered
    /// without verification; `require` insists without verification (as libpq does without a
    /// root certificate); `verify-ca` and `verify-full` verify against `sslrootcert`
    /// (or the system's roots), `verify-full` also checks the host name.
    /// Unix sockets never use TLS.
    ///
    /// - Parameter poolSize: the most connections, at least 1; every process using these
    ///   settings may hold that many server connections.
    public func makeClientConfiguration(poolSize: Int = ConnectionSettings.defaultPoolSize) throws -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        switch host {
        case .unixSocketDirectory:
            configuration = .init(unixSocketPath: unixSocketPath!, username: user, password: password, database: database)
        case .tcp(let name):
            configuration = .init(host: name, port: port, username: user, password: password, database: database, tls: try makeTLS(serverName: name))
        }
        if let connectTimeoutSeconds {
            configuration.options.connectTimeout = .seconds(connectTimeoutSeconds)
        }
        configuration.options.additionalStartupParameters = [("application_name", effectiveApplicationName)]
        try configuration.options.useRecommendedPool(connections: poolSize)
        return configuration
    }

    /// A configuration for one dedicated `PostgresConnection` (outside any pool), with the same
    /// TLS rules as ``makeClientConfiguration(poolSize:)``.
    public func makeConnectionConfiguration() throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        switch host {
        case .unixSocketDirectory:
            configuration = .init(unixSocketPath: unixSocketPath!, username: user, password: password, database: database)
        case .tcp(let name):
            let tls: PostgresConnection.Configuration.TLS
            switch try makeTLSChoice(serverName: name) {
            case .disable: tls = .disable
            case .prefer(let configuration): tls = .prefer(try NIOSSLContext(configuration: configuration))
            case .require(let configuration): tls = .require(try NIOSSLContext(configuration: configuration))
            }
            configuration = .init(host: name, port: port, username: user, password: password, database: database, tls: tls)
        }
        if let connectTimeoutSeconds {
            configuration.options.connectTimeout = .seconds(Int64(connectTimeoutSeconds))
        }
        configuration.options.additionalStartupParameters = [("application_name", effectiveApplicationName)]
        return configuration
    }

    private enum TLSChoice {
        case disable
        case prefer(TLSConfiguration)
        case require(TLSConfiguration)
    }

    private func makeTLS(serverName: String) throws -> PostgresClient.Configuration.TLS {
        switch try makeTLSChoice(serverName: serverName) {
        case .disable: return .disable
        case .prefer(let tls): return .prefer(tls)
        case .require(let tls): return .require(tls)
        }
    }

    private func makeTLSChoice(serverName: String) throws -> TLSChoice {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch sslMode {
        case .disable:
            return .disable
        case .allow, .prefer:
            tls.certificateVerification = .none
            return .prefer(tls)
        case .require:
            tls.certificateVerification = .none
            if let sslRootCertificatePath {
                // libpq: with a root certificate present, `require` behaves like `verify-ca`.
                tls.trustRoots = .file(sslRootCertificatePath)
                tls.certificateVerification = .noHostnameVerification
            }
            return .require(tls)
        case .verifyCA, .verifyFull:
            if let sslRootCertificatePath {
                tls.trustRoots = .file(sslRootCertificatePath)
            }
            tls.certificateVerification = sslMode == .verifyFull ? .fullVerification : .noHostnameVerification
            return .require(tls)
        }
    }
}
