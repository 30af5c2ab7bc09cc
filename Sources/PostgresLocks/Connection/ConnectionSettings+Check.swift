import Logging
import PostgresNIO

extension ConnectionSettings {
    /// Opens one dedicated connection with these settings, runs `SELECT 1` and closes it, so a
    /// connection that can never be made fails now, with its real reason.
    ///
    /// A `PostgresClient` retries a failing connect in the background and keeps its callers
    /// waiting: with a wrong password or TLS the server does not offer, a library call through
    /// the pool waits until the pool's circuit breaker trips (60 s in PostgresNIO 1.33) and then
    /// reports only that no connection could be made. Call this once at startup, before
    /// creating the client:
    ///
    /// ```swift
    /// try await settings.checkConnection(logger: logger)
    /// let client = PostgresClient(configuration: try settings.makeClientConfiguration(), backgroundLogger: logger)
    /// ```
    ///
    /// - Throws: ``PostgresLocksError``: ``PostgresLocksError/Code/tlsUnavailable`` when TLS is
    ///   required and the server does not offer it; ``PostgresLocksError/Code/server`` with the
    ///   SQLSTATE for a refused login (`28P01` wrong password, `28000` no such role or no
    ///   `pg_hba.conf` entry, `3D000` no such database); ``PostgresLocksError/Code/connectionLost``
    ///   when the server cannot be reached; ``PostgresLocksError/Code/client`` for a TLS
    ///   handshake that fails (an untrusted certificate). Descriptions never contain the password.
    public func checkConnection(logger: Logger) async throws {
        let configuration = try makeConnectionConfiguration()
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: Int.random(in: 1...Int(Int32.max)), logger: logger)
        } catch {
            throw PostgresLocksError.wrap(error)
        }
        do {
            try await connection.runStatement("SELECT 1", logger: logger)
        } catch {
            await connection.closeDiscardingErrors()
            throw error
        }
        await connection.closeDiscardingErrors()
    }
}
