#if Vapor
import PostgresLocks
import PostgresQueue
import Vapor

/// A library error a route handler lets escape answers with a status that says what happened
/// (see ``HTTPErrorMapping``), and a fixed reason: never the server's message or SQL.
extension PostgresLocksError: AbortError {
    /// The HTTP status for ``PostgresLocks/PostgresLocksError/code``.
    public var status: HTTPResponseStatus { HTTPErrorMapping.status(for: code) }
    /// A fixed sentence for the status; the error's own text stays in the server's log.
    public var reason: String { HTTPErrorMapping.reason(for: code) }
    /// `Retry-After` for errors that a retry can cure.
    public var headers: HTTPHeaders { HTTPErrorMapping.headers(for: code) }
}

/// A queue error a route handler lets escape is a server error, with a fixed reason.
extension PostgresQueueError: AbortError {
    /// 500: a queue error is the server's problem, not the client's.
    public var status: HTTPResponseStatus { .internalServerError }
    /// A fixed sentence; the error's own text stays in the server's log.
    public var reason: String { "The job could not be handled." }
}
#endif
