import HTTPTypes

/// An error of the web console: a code and a readable description.
public struct WebConsoleError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong.
    public enum Code: String, Sendable, Hashable {
        /// The console's configuration cannot be used (a bad path, credentials, schema, …).
        case invalidConfiguration
        /// A request named something that does not exist or is not shown here.
        case notFound
        /// A request was malformed (a bad id, a missing field).
        case badRequest
        /// The request was refused (no or wrong CSRF token, cross-site, read-only console).
        case forbidden
    }

    /// What went wrong.
    public var code: Code
    /// The details, for people.
    public var message: String

    /// The HTTP status the console answers this error with.
    public var status: HTTPResponse.Status {
        switch code {
        case .notFound: .notFound
        case .forbidden: .forbidden
        case .badRequest, .invalidConfiguration: .badRequest
        }
    }

    /// An error.
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// `code: message`.
    public var description: String { "\(code.rawValue): \(message)" }
}
