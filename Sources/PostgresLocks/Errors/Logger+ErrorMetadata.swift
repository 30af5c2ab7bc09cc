import Logging

package extension Logger.MetadataValue {
    /// An error as the library's log lines show it, under the `error` key.
    ///
    /// PostgresNIO's `PSQLError` describes itself with one generic sentence, the same for a
    /// refused connection, a terminated backend and a failed statement, so a driver error is
    /// first mapped to ``PostgresLocksError``: its description names what failed and keeps the
    /// server's message, with the values a data exception quotes withheld. Other errors are
    /// described as they are.
    static func error(_ error: any Error) -> Self {
        .string("\(PostgresLocksError.wrap(error))")
    }
}
