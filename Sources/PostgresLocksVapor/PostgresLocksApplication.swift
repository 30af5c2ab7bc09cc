#if Vapor
import Logging
import PostgresLocks
import PostgresNIO
import ServiceLifecycle
import Tracing
import Vapor

extension Application {
    /// The application's PostgresLocks: the `PostgresClient` the library runs on (shared with
    /// Fluent if you wish) and the services (queue workers, leader elections, schedulers) that
    /// run in the application's lifecycle.
    ///
    /// ```swift
    /// let client = try app.postgresLocks.use(url: Environment.get("DATABASE_URL")!)
    /// app.databases.use(.postgres(client: client, logger: app.logger), as: .psql)
    /// try app.postgresLocks.run(worker)
    /// ```
    public var postgresLocks: PostgresLocksApplication { PostgresLocksApplication(application: self) }
}

/// Configures PostgresLocks in a Vapor `Application`: reached as `app.postgresLocks`.
///
/// Give it a client (``use(_:)``) or connection settings (``use(settings:poolSize:)``,
/// ``use(url:poolSize:)``): the client runs from that moment until the application shuts down,
/// so Fluent sharing it can migrate before the application boots. Services added with
/// ``run(_:whenStopped:)`` start when the application boots to serve, and stop gracefully,
/// before the client, when it shuts down.
public struct PostgresLocksApplication: Sendable {
    /// The application this configures.
    public let application: Application

    struct Key: StorageKey {
        typealias Value = PostgresLocksLifecycle
    }

    /// The lifecycle handler holding the client and the services, made on first use.
    var lifecycle: PostgresLocksLifecycle {
        if let existing = application.storage[Key.self] { return existing }
        let made = PostgresLocksLifecycle(logger: application.logger)
        application.storage[Key.self] = made
        application.lifecycle.use(made)
        return made
    }

    /// Uses `client` for the library and runs it now, until the application shuts down.
    ///
    /// - Throws: ``PostgresLocks/PostgresLocksError/Code/invalidArgument`` if a client is
    ///   already in use.
    @discardableResult
    public func use(_ client: PostgresClient) throws -> PostgresClient {
        try lifecycle.start(client)
        return client
    }

    /// Makes a client from `settings` (with `application_name` set to the instance's, unless
    /// the settings name one), uses it and runs it now, until the application shuts down.
    ///
    /// - Throws: ``PostgresLocks/PostgresLocksError/Code/invalidArgument`` if a client is
    ///   already in use; an error if the settings cannot make a client configuration.
    @discardableResult
    public func use(settings: ConnectionSettings, poolSize: Int = ConnectionSettings.defaultPoolSize) throws -> PostgresClient {
        let client = PostgresClient(configuration: try settings.makeClientConfiguration(poolSize: poolSize), backgroundLogger: application.logger)
        return try use(client)
    }

    /// Like ``use(settings:poolSize:)``, from a URL in any form ``PostgresLocks/ConnectionSettings``
    /// accepts (the forms Vapor's PostgresKit accepts among them).
    ///
    /// - Throws: ``PostgresLocks/ConnectionSettingsError`` naming what is wrong in the URL.
    @discardableResult
    public func use(url: String, poolSize: Int = ConnectionSettings.defaultPoolSize) throws -> PostgresClient {
        try use(settings: try ConnectionSettings(url: url), poolSize: poolSize)
    }

    /// The client given to ``use(_:)`` (or made by the other `use` calls).
    ///
    /// - Precondition: one of the `use` calls ran first.
    public var client: PostgresClient {
        guard let client = lifecycle.client else {
            preconditionFailure("app.postgresLocks.client was read before app.postgresLocks.use(…) was called")
        }
        return client
    }

    /// Runs `service` in the application's lifecycle: started when the application boots to
    /// serve (`serve`, the default command, or a test application), not for other commands
    /// such as `migrate`; shut down gracefully when the application shuts down.
    ///
    /// A service that stops on its own (an error, or it returned) is logged at once, at
    /// `error` for an error and at `notice` otherwise; `whenStopped` says whether the
    /// application then goes on or shuts down.
    ///
    /// - Throws: ``PostgresLocks/PostgresLocksError/Code/invalidArgument`` once the services
    ///   have started.
    public func run(_ service: some Service, whenStopped: ServiceStopPolicy = .keepRunning) throws {
        try lifecycle.add(service, whenStopped: whenStopped)
    }

    /// Whether the services have started (the application booted to serve).
    public var servicesStarted: Bool { lifecycle.servicesStarted }
}

/// What the application does when a service run by ``PostgresLocksApplication/run(_:whenStopped:)``
/// stops on its own.
public struct ServiceStopPolicy: Sendable, Hashable {
    enum Kind: Hashable {
        case keepRunning
        case shutDownApplication
    }

    let kind: Kind

    /// Log it and go on serving (the default): a stopped worker does not take the HTTP API down.
    public static let keepRunning = ServiceStopPolicy(kind: .keepRunning)
    /// Log it and shut the application down (for a service the application cannot do without).
    public static let shutDownApplication = ServiceStopPolicy(kind: .shutDownApplication)
}

extension Request {
    /// PostgresLocks for this request: the application's client, the request's logger and its
    /// trace context.
    public var postgresLocks: PostgresLocksRequest {
        PostgresLocksRequest(client: application.postgresLocks.client, logger: logger, serviceContext: serviceContext)
    }
}

/// What a request handler uses the library with: reached as `req.postgresLocks`.
public struct PostgresLocksRequest: Sendable {
    /// The application's client.
    public let client: PostgresClient
    /// The request's logger (its `request-id` in every line the library logs).
    public let logger: Logger
    /// The request's trace context (its span, with Vapor's `TracingMiddleware`).
    public let serviceContext: ServiceContext

    /// Runs `body` with the request's trace context as the task's current one, so the
    /// library's spans in it are children of the request's span wherever Vapor runs the
    /// handler.
    public func traced<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> sending Result
    ) async throws -> sending Result {
        let box = try await ServiceContext.$current.withValue(serviceContext) {
            SendingBox(try await body())
        }
        return box.value
    }
}

#endif
