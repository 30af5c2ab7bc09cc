/// An error of the queue itself, beside the `PostgresLocksError`s its
/// statements can throw.
///
/// ```swift
/// do {
///     try await context.complete(in: tx)
/// } catch let error as PostgresQueueError where error.code == .leaseLost {
///     // another worker owns the job now: this outcome was not recorded
/// }
/// ```
public struct PostgresQueueError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What went wrong, as a small extensible set of named codes.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's stable, readable name (for logs and metrics labels).
        public let name: String

        init(_ name: String) { self.name = name }

        /// A job's lease was reclaimed or the job was cancelled: this worker no longer owns it,
        /// so its outcome was not recorded (the fencing check refused it).
        public static let leaseLost = Code("leaseLost")
        /// A job's payload could not be encoded or decoded as the handler's type.
        public static let payloadCoding = Code("payloadCoding")
        /// A job ran longer than its kind's run timeout; its task was cancelled and the attempt failed.
        public static let runTimeout = Code("runTimeout")

        public var description: String { name }
    }

    /// What went wrong.
    public var code: Code
    /// A readable explanation. It names jobs by id and kind, never by payload content.
    public var message: String
    /// The error this one was made from (an `EncodingError` or `DecodingError`), for debugging.
    public var underlying: (any Error)?

    /// Creates an error.
    public init(code: Code, message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String { "\(code): \(message)" }

    public var debugDescription: String {
        underlying.map { "\(description) (underlying: \(String(reflecting: $0)))" } ?? description
    }
}
