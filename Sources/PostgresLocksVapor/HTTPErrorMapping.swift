#if Vapor
import PostgresLocks
import Vapor

/// How a ``PostgresLocks/PostgresLocksError`` (or a PostgreSQL error from the driver, through
/// ``PostgresErrorMiddleware``) answers an HTTP request.
///
/// | Code | Status | `Retry-After` |
/// |---|---|---|
/// | `lockTimeout`, `lockNotAvailable` | 503 Service Unavailable | 1 |
/// | `deadlock`, `serializationFailure` | 503 Service Unavailable | 1 |
/// | `connectionLost`, `lockTableFull` | 503 Service Unavailable | 1 |
/// | `uniqueViolation` | 409 Conflict | |
/// | `fenced` | 409 Conflict | |
/// | anything else | 500 Internal Server Error | |
///
/// The reason sent is a fixed sentence per case: the error's message (which can quote the
/// server, and so a statement or a value) never reaches the client.
public enum HTTPErrorMapping {
    /// The status for `code`.
    public static func status(for code: PostgresLocksError.Code) -> HTTPResponseStatus {
        switch code {
        case .lockTimeout, .lockNotAvailable, .deadlock, .serializationFailure, .connectionLost, .lockTableFull:
            .serviceUnavailable
        case .uniqueViolation, .fenced:
            .conflict
        default:
            .internalServerError
        }
    }

    /// The reason sent for `code`.
    public static func reason(for code: PostgresLocksError.Code) -> String {
        switch code {
        case .lockTimeout, .lockNotAvailable: "The resource is busy. Try again shortly."
        case .deadlock, .serializationFailure: "A concurrent change conflicted with this one. Try again."
        case .connectionLost, .lockTableFull: "The database is unavailable. Try again shortly."
        case .uniqueViolation: "It already exists."
        case .fenced: "Another instance has taken over this work; the change was refused."
        default: "Something went wrong."
        }
    }

    /// Extra headers for `code`: `Retry-After: 1` when a retry can succeed.
    public static func headers(for code: PostgresLocksError.Code) -> HTTPHeaders {
        status(for: code) == .serviceUnavailable ? ["Retry-After": "1"] : [:]
    }
}

/// Maps PostgreSQL errors that escape a route handler from the driver (a Fluent `save` that
/// hits a unique index, a deadlock in an SQLKit query) as the library's own errors are mapped
/// (see ``HTTPErrorMapping``), with a fixed reason. Add it after Vapor's `ErrorMiddleware`,
/// which renders the answer: `app.middleware.use(PostgresErrorMiddleware())`.
public struct PostgresErrorMiddleware: AsyncMiddleware {
    /// A middleware mapping driver errors.
    public init() {}

    /// Passes the request on; maps an error from the driver on its way out.
    public func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        do {
            return try await next.respond(to: request)
        } catch let error as any AbortError {
            throw error
        } catch {
            guard let mapped = PostgresLocksError.wrap(error) as? PostgresLocksError, mapped.sqlState != nil || mapped.code == .connectionLost else {
                throw error
            }
            request.logger.notice("a PostgreSQL error answered the request", metadata: ["error": .error(mapped)])
            throw mapped
        }
    }
}
#endif
