import Hummingbird

/// A request the service refuses before touching the database: answered with `400 Bad Request`
/// and `{"error": {"message": "…"}}`.
struct InvalidInput: HTTPResponseError, CustomStringConvertible {
    /// What is wrong, for the client.
    let message: String

    /// Always `400 Bad Request`.
    var status: HTTPResponse.Status { .badRequest }

    var description: String { "invalid input: \(message)" }

    init(_ message: String) {
        self.message = message
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        try HTTPError(.badRequest, message: message).response(from: request, context: context)
    }
}
