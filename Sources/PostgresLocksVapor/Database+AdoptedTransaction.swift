#if Fluent
import FluentKit
import Logging
import PostgresLocks
import PostgresNIO
import SQLKit

extension FluentKit.Database {
    /// Runs `body` with a ``PostgresLocks/Transaction`` for the Fluent transaction this
    /// database is in: call it on the `db` of `req.db.transaction { db in … }`. The library
    /// adopts that transaction: it sends no `BEGIN`, `COMMIT` or `ROLLBACK`, so the locks,
    /// gapless numbers, ingested keys and enqueued jobs of `body` commit with the models Fluent
    /// saves in it, and its rollback undoes them all.
    ///
    /// ```swift
    /// try await req.db.transaction { db in
    ///     let document = Document(tenant: tenant, title: title)
    ///     try await db.withAdoptedTransaction(canceller: req.postgresLocks.client) { tx in
    ///         document.number = try await numbers.next(scope: tenant, in: tx)
    ///     }
    ///     try await document.save(on: db)
    /// }
    /// ```
    ///
    /// It works with FluentPostgresDriver on a shared `PostgresClient` (`.postgres(client:)`)
    /// and on its own pool (`.postgres(configuration:)`): the transaction's connection is found
    /// inside the database value (the drivers do not hand it out), and that the connection is in
    /// a transaction block is checked with the server before anything else is sent.
    ///
    /// - Parameters:
    ///   - canceller: the client the connection was leased from (`req.postgresLocks.client` when
    ///     Fluent shares it): a lock wait whose task is cancelled is then ended from another of
    ///     its connections, and the transaction's connection stays usable. Without one, a
    ///     cancelled lock wait closes the connection.
    ///   - logger: where the library's statements are logged; the database's logger if nil.
    ///   - isolation: the actor `body` runs on; the caller's (`#isolation`) by default.
    ///   - body: the work; its ``PostgresLocks/Transaction`` must not outlive it.
    /// - Throws: ``PostgresLocks/PostgresLocksError/Code/notInTransaction`` when this database
    ///   is not a PostgreSQL connection inside a transaction (`req.db` itself, or another
    ///   database driver), and whatever `body` throws; see
    ///   `PostgresConnection.withAdoptedTransaction(canceller:logger:isolation:_:)`.
    public func withAdoptedTransaction<Result>(
        canceller: PostgresClient? = nil,
        logger: Logger? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresLocks.Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        let connection = try FluentConnectionLookup.connection(
            in: self, refusal: "this Fluent database is not a PostgreSQL transaction's: nothing was run",
            hint: "call it on the database a transaction hands you: req.db.transaction { db in try await db.withAdoptedTransaction { tx in … } }"
        )
        return try await connection.withAdoptedTransaction(canceller: canceller, logger: logger ?? self.logger, body)
    }
}

extension SQLKit.SQLDatabase {
    /// Runs `body` with a ``PostgresLocks/Transaction`` for the transaction this SQLKit
    /// database's session is in (a `BEGIN` sent on the database `withSession` hands you, or on
    /// a `PostgresConnection`'s `sql()`): the SQLKit form of
    /// `FluentKit.Database.withAdoptedTransaction(canceller:logger:isolation:_:)`, with the same
    /// checks and errors.
    ///
    /// ```swift
    /// try await sql.withSession { session in
    ///     try await session.raw("BEGIN").run()
    ///     let number = try await session.withAdoptedTransaction { tx in try await numbers.next(scope: tenant, in: tx) }
    ///     try await session.raw("INSERT INTO documents (tenant, number) VALUES (\(bind: tenant), \(bind: number))").run()
    ///     try await session.raw("COMMIT").run()
    /// }
    /// ```
    public func withAdoptedTransaction<Result>(
        canceller: PostgresClient? = nil,
        logger: Logger? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresLocks.Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        let connection = try FluentConnectionLookup.connection(
            in: self, refusal: "this SQLKit database is not one PostgreSQL session in a transaction: nothing was run",
            hint: "call it on the database withSession hands you, after BEGIN"
        )
        return try await connection.withAdoptedTransaction(canceller: canceller, logger: logger ?? self.logger, body)
    }
}

extension PostgresLocksRequest {
    /// Runs `body` in the Fluent transaction `database` is in, in the request's trace, with
    /// the application's client to cancel lock waits and the request's logger: the request
    /// handler's form of `Database.withAdoptedTransaction(canceller:logger:isolation:_:)`.
    ///
    /// ```swift
    /// try await req.db.transaction { db in
    ///     let number = try await req.postgresLocks.withAdoptedTransaction(on: db) { tx in
    ///         try await numbers.next(scope: tenant, in: tx)
    ///     }
    ///     try await Document(tenant: tenant, number: number, title: title).create(on: db)
    /// }
    /// ```
    public func withAdoptedTransaction<Result>(
        on database: any FluentKit.Database,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresLocks.Transaction) async throws -> sending Result
    ) async throws -> sending Result {
        try await traced {
            try await database.withAdoptedTransaction(canceller: client, logger: logger, body)
        }
    }
}

/// Finds the `PostgresConnection` a Fluent (or SQLKit) database inside a transaction runs on.
///
/// FluentPostgresDriver keeps it to itself: on a shared client, a transaction's database holds
/// `source: .connection(<SQLKit database>)` whose `connection` is the connection; on the
/// driver's own pool it holds `database: <SQLKit database>` whose `database` leads to it. The
/// lookup follows only children labelled `source`, `connection` and `database`, so it never
/// walks into a pool (a database outside a transaction holds the client, under `client`, and
/// finds nothing). The example's tests fail if a later driver moves it.
enum FluentConnectionLookup {
    static let followedLabels: Set<String> = ["source", "connection", "database"]

    /// The connection inside `database`, or ``PostgresLocks/PostgresLocksError/Code/notInTransaction``
    /// with `refusal` and `hint` when there is none.
    static func connection(in database: Any, refusal: String, hint: String) throws -> PostgresConnection {
        guard let connection = find(in: database) else {
            throw PostgresLocksError(code: .notInTransaction, message: refusal, hint: hint)
        }
        return connection
    }

    /// The connection inside `value`, following only the labels above.
    static func find(in value: Any, depth: Int = 0) -> PostgresConnection? {
        if let connection = value as? PostgresConnection { return connection }
        guard depth < 8 else { return nil }
        for child in Mirror(reflecting: value).children {
            guard let label = child.label, followedLabels.contains(label) else { continue }
            if let found = find(in: child.value, depth: depth + 1) { return found }
        }
        return nil
    }
}
#endif
