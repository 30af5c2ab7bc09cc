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
    /// - Throws: ``PostgresLocksError``, whose message names the host and port (or the socket
    ///   file) and, for a refused login, the user; never the password:
    ///   ``PostgresLocksError/Code/connectionRefused``, ``PostgresLocksError/Code/socketNotFound``,
    ///   ``PostgresLocksError/Code/unknownHost``, ``PostgresLocksError/Code/connectTimeout``
    ///   (the URL's `connect_timeout`, else 10 s), ``PostgresLocksError/Code/authenticationFailed``
    ///   (`28P01`, or `28000` with the method), ``PostgresLocksError/Code/roleNotFound`` (`28000`,
    ///   when the server says so), ``PostgresLocksError/Code/databaseNotFound`` (`3D000`),
    ///   ``PostgresLocksError/Code/tlsUnavailable`` when TLS is required and the server does not
    ///   offer it, ``PostgresLocksError/Code/connectFailed`` for anything else (a TLS handshake
    ///   that fails on an untrusted certificate, an unreachable network).
    public func checkConnection(logger: Logger) async throws {
        let connection = try await connect(logger: logger)
        do {
            try await connection.runStatement("SELECT 1", logger: logger)
        } catch {
            await connection.closeDiscardingErrors()
            throw error
        }
        await connection.closeDiscardingErrors()
    }

    /// Opens one dedicated connection (outside any pool) with these settings.
    ///
    /// A failure is a ``PostgresLocksError`` whose message names what was tried: the host and
    /// port or the socket file, the user and the authentication method for a refused login,
    /// the database; never the password (see ``checkConnection(logger:)`` for the codes).
    /// Cancelling the calling task abandons the attempt.
    ///
    /// - Parameters:
    ///   - id: the connection's id in PostgresNIO's logs.
    ///   - logger: the connection's logger, kept for its lifetime.
    func connect(id: Int = Int.random(in: 1...Int(Int32.max)), logger: Logger) async throws -> PostgresConnection {
        let target = ConnectTarget(self)
        let configuration: PostgresConnection.Configuration
        do {
            configuration = try makeConnectionConfiguration()
        } catch {
            throw PostgresLocksError.connectFailure(error, target: target, authenticationMethod: nil)
        }
        // Watches the startup for the authentication method the server asks for, so that a
        // refused login can name it; afterwards the logger is the caller's.
        let observer = StartupObserver()
        do {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: id, logger: observer.watching(logger))
            observer.finish()
            return connection
        } catch {
            observer.finish()
            throw PostgresLocksError.connectFailure(error, target: target, authenticationMethod: observer.authenticationMethod)
        }
    }
}
