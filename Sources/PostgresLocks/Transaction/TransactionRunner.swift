import Logging
import PostgresNIO

/// Where the library runs its transactions and statements: a pool, or one connection the caller
/// holds.
///
/// `PostgresClient` and `PostgresConnection` are the two runners, so every call that runs a
/// transaction (checked and retrying transactions, advisory locks, exactly-once ingestion,
/// gapless numbers) has one shape on both. What differs is where the connection comes from:
///
/// - On a **`PostgresClient`**, each transaction runs on a connection leased for it. A lock wait
///   whose task is cancelled is ended from another pooled connection, and a retrying
///   transaction whose connection was lost can be re-run on a new one.
/// - On a **`PostgresConnection`**, transactions run one after another on it. A cancelled lock
///   wait closes it (there is no other connection to cancel the server-side wait from), and a
///   lost connection is never re-run (it is gone).
///
/// The library provides the two conformances; other types cannot make a ``TransactionRoute``.
public protocol TransactionRunner: Sendable {
    /// How the library reaches the server through this runner.
    var transactionRoute: TransactionRoute { get }
}

/// How the library reaches the server through a ``TransactionRunner``: a pool or one
/// connection. Only the library makes one.
public struct TransactionRoute: Sendable {
    enum Kind: Sendable {
        case pool(PostgresClient)
        case connection(PostgresConnection)
    }

    let kind: Kind

    /// The pool behind this route, if it is one: where waits are cancelled from and lost
    /// commits settled.
    var client: PostgresClient? {
        if case .pool(let client) = kind { return client }
        return nil
    }

    /// Runs `body` with a connection: a leased one for a pool (see
    /// `PostgresClient.withLibraryConnection`), the held one otherwise. `body` also receives the
    /// pool, if any, to cancel lock waits through.
    func withConnection<Result>(
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection, PostgresClient?) async throws -> sending Result
    ) async throws -> sending Result {
        switch kind {
        case .pool(let client):
            return try await client.withLibraryConnection(logger: logger) { connection in
                try await body(connection, client)
            }
        case .connection(let connection):
            return try await body(connection, nil)
        }
    }
}

extension PostgresClient: TransactionRunner {
    /// This pool: each transaction on a connection leased for it.
    public var transactionRoute: TransactionRoute { TransactionRoute(kind: .pool(self)) }
}

extension PostgresConnection: TransactionRunner {
    /// This connection: transactions one after another on it.
    public var transactionRoute: TransactionRoute { TransactionRoute(kind: .connection(self)) }
}
