import Crypto
import Foundation

/// Who may use a ``WebConsole``: nobody needs to sign in (loopback only), a bearer token, or
/// basic-auth credentials.
///
/// Browsers sign in through their basic-auth prompt; with a token, any user name and the token
/// as the password. Scripts may send `Authorization: Bearer <token>`. Secrets are never put in
/// a page, a log line or a URL.
public enum WebConsoleAuthentication: Sendable, Hashable {
    /// No sign-in: only for a console bound to the loopback interface.
    case none
    /// A shared token.
    case token(String)
    /// A user name and password.
    case basic(username: String, password: String)

    /// The environment variable holding a token.
    public static let tokenVariable = "PGLOCK_WEB_TOKEN"
    /// The environment variable naming a file whose first line is a token.
    public static let tokenFileVariable = "PGLOCK_WEB_TOKEN_FILE"
    /// The environment variable holding a basic-auth user name.
    public static let userVariable = "PGLOCK_WEB_USER"
    /// The environment variable holding a basic-auth password.
    public static let passwordVariable = "PGLOCK_WEB_PASSWORD"

    /// Whether anyone must sign in.
    public var isRequired: Bool { self != .none }

    /// Reads the credentials from the environment: `PGLOCK_WEB_USER` and `PGLOCK_WEB_PASSWORD`,
    /// else `PGLOCK_WEB_TOKEN`, else a token in the file named by `PGLOCK_WEB_TOKEN_FILE`;
    /// ``none`` when none is set (an empty variable counts as unset).
    ///
    /// - Throws: ``WebConsoleError`` (`invalidConfiguration`) for a user without a password,
    ///   or a token file that cannot be read or is empty.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(WebConsoleError) -> WebConsoleAuthentication {
        if let user = environment[userVariable], !user.isEmpty {
            guard let password = environment[passwordVariable], !password.isEmpty else {
                throw WebConsoleError(code: .invalidConfiguration, message: "\(userVariable) is set but \(passwordVariable) is empty")
            }
            return .basic(username: user, password: password)
        }
        if let token = environment[tokenVariable], !token.isEmpty {
            return .token(token)
        }
        if let path = environment[tokenFileVariable], !path.isEmpty {
            return try tokenFromFile(path)
        }
        return .none
    }

    /// A token read from the first line of a file.
    public static func tokenFromFile(_ path: String) throws(WebConsoleError) -> WebConsoleAuthentication {
        guard let contents = FileManager.default.contents(atPath: path), let text = String(data: contents, encoding: .utf8) else {
            throw WebConsoleError(code: .invalidConfiguration, message: "cannot read the token file \(path)")
        }
        let token = text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
        guard !token.isEmpty else { throw WebConsoleError(code: .invalidConfiguration, message: "the token file \(path) is empty") }
        return .token(token)
    }

    /// The signed-in user's name for logs (`local` without sign-in, `token` for a token), or
    /// nil when the `Authorization` header does not match.
    func actor(authorization: String?) -> String? {
        switch self {
        case .none:
            return "local"
        case .token(let token):
            guard let authorization else { return nil }
            if authorization.hasPrefix("Bearer "), Self.same(String(authorization.dropFirst(7)), token) { return "token" }
            if let (_, password) = Self.basicCredentials(authorization), Self.same(password, token) { return "token" }
            return nil
        case .basic(let username, let password):
            guard let authorization, let (user, given) = Self.basicCredentials(authorization) else { return nil }
            // Both compared, always, in constant time.
            let userMatches = Self.same(user, username), passwordMatches = Self.same(given, password)
            return userMatches && passwordMatches ? username : nil
        }
    }

    static func basicCredentials(_ authorization: String) -> (String, String)? {
        guard authorization.hasPrefix("Basic "),
              let data = Data(base64Encoded: String(authorization.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
              let text = String(data: data, encoding: .utf8),
              let colon = text.firstIndex(of: ":")
        else { return nil }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }

    /// Compares two secrets without leaking where they differ (digests of equal length).
    static func same(_ a: String, _ b: String) -> Bool {
        let da = SHA256.hash(data: Data(a.utf8)), db = SHA256.hash(data: Data(b.utf8))
        var difference: UInt8 = 0
        for (x, y) in zip(da, db) { difference |= x ^ y }
        return difference == 0
    }
}
