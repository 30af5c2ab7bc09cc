/// A connection URL or `PG*` variable that could not be understood.
///
/// The description names the bad part (scheme, port, host, a query parameter, …) and never
/// contains the password: the user-info part of a URL is never echoed.
public struct ConnectionSettingsError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, as a small extensible set of named codes.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's readable name.
        public let name: String
        init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The URL does not start with `postgres://` or `postgresql://`.
        public static let unknownScheme = Code("unknownScheme")
        /// The port is not a number from 1 to 65535.
        public static let invalidPort = Code("invalidPort")
        /// A `%` escape is not followed by two hex digits, or decodes to invalid UTF-8.
        public static let invalidPercentEncoding = Code("invalidPercentEncoding")
        /// The host is empty where one is required, or malformed (an unclosed `[`).
        public static let invalidHost = Code("invalidHost")
        /// A query parameter that libpq does not know or this library does not support.
        public static let unknownParameter = Code("unknownParameter")
        /// A parameter has a value outside its allowed set (e.g. `sslmode=maybe`).
        public static let invalidParameterValue = Code("invalidParameterValue")
        /// A valid libpq feature that is not supported here (several hosts).
        public static let unsupported = Code("unsupported")
    }

    /// What is wrong.
    public var code: Code
    /// The part of the URL or the variable that is wrong (`"port"`, `"query parameter sslmode"`, `"PGPORT"`).
    public var part: String
    /// A readable explanation that never includes the password.
    public var message: String

    public var description: String { "invalid connection settings (\(code.name), in the \(part)): \(message)" }
}
