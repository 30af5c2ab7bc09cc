#if Vapor
import Logging
import PostgresLocks
import PostgresNIO
import ServiceLifecycle
import Synchronization
import Vapor

/// Runs the client of ``PostgresLocksApplication`` from ``PostgresLocksApplication/use(_:)``
/// to shutdown, and its services from boot to shutdown, in a Vapor application's lifecycle.
///
/// The client is running before the application boots, so that Fluent on the same client can
/// migrate in `configure`. The services run in one `ServiceGroup`; at shutdown it is shut down
/// gracefully (each service finishes what it holds) before the client stops.
final class PostgresLocksLifecycle: LifecycleHandler, Sendable {
    private struct Registered: @unchecked Sendable {
        // `any Service` is Sendable; the box keeps the policy beside it.
        let service: any Service
        let policy: ServiceStopPolicy
    }

    private struct State {
        var client: PostgresClient?
        var clientTask: Task<Void, Never>?
        var services: [Registered] = []
        var group: ServiceGroup?
        var groupTask: Task<Void, Never>?
        var shuttingDown = false
    }

    private let state = Mutex(State())
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    var client: PostgresClient? { state.withLock { $0.client } }
    var servicesStarted: Bool { state.withLock { $0.group != nil } }
    var isShuttingDown: Bool { state.withLock { $0.shuttingDown } }

    /// Starts running `client` now.
    func start(_ client: PostgresClient) throws {
        try state.withLock { state in
            guard state.client == nil else {
                throw PostgresLocksError(code: .invalidArgument, message: "app.postgresLocks.use(…) was already called: the application has one client for the library")
            }
            state.client = client
            state.clientTask = Task { await client.run() }
        }
    }

    func add(_ service: some Service, whenStopped policy: ServiceStopPolicy) throws {
        try state.withLock { state in
            guard state.group == nil else {
                throw PostgresLocksError(code: .invalidArgument, message: "app.postgresLocks.run(…) was called after the services started: add services before the application boots")
            }
            state.services.append(Registered(service: service, policy: policy))
        }
    }

    // MARK: LifecycleHandler

    func didBoot(_ application: Application) throws {
        startServices(application)
    }

    func didBootAsync(_ application: Application) async throws {
        startServices(application)
    }

    func shutdown(_ application: Application) {
        // A synchronous shutdown cannot wait: the services and the client are asked to stop.
        let (group, _, clientTask) = beginShutdown()
        if let group { Task { await group.triggerGracefulShutdown() } }
        clientTask?.cancel()
    }

    func shutdownAsync(_ application: Application) async {
        let (group, groupTask, clientTask) = beginShutdown()
        if let group {
            await group.triggerGracefulShutdown()
            await groupTask?.value
        }
        clientTask?.cancel()
        await clientTask?.value
    }

    private func beginShutdown() -> (ServiceGroup?, Task<Void, Never>?, Task<Void, Never>?) {
        state.withLock { state in
            state.shuttingDown = true
            return (state.group, state.groupTask, state.clientTask)
        }
    }

    /// Whether the application booted to serve (the default command, `serve`, or a test
    /// application, which runs no command): other commands, such as `migrate`, run no services.
    static func bootsToServe(_ application: Application) -> Bool {
        let arguments = application.environment.arguments
        guard arguments.count > 1 else { return true }
        let command = arguments[1]
        return command == "serve" || command.hasPrefix("-")
    }

    private func startServices(_ application: Application) {
        guard Self.bootsToServe(application) else { return }
        let logger = self.logger
        state.withLock { state in
            guard state.group == nil, !state.services.isEmpty, !state.shuttingDown else { return }
            let configurations = state.services.map { registered in
                ServiceGroupConfiguration.ServiceConfiguration(
                    service: WatchedService(registered.service, policy: registered.policy, lifecycle: self, application: application, logger: logger),
                    successTerminationBehavior: .ignore,
                    failureTerminationBehavior: .ignore,
                    serviceName: "\(type(of: registered.service))"
                )
            }
            var configuration = ServiceGroupConfiguration(services: configurations, logger: logger)
            configuration.gracefulShutdownSignals = []
            configuration.cancellationSignals = []
            let group = ServiceGroup(configuration: configuration)
            state.group = group
            // Made under the lock with the group, so a shutdown that sees the group also sees
            // the task to wait for (a shutdown requested before the group runs is kept by it).
            state.groupTask = Task {
                do {
                    try await group.run()
                } catch {
                    logger.error("PostgresLocks services ended with an error", metadata: ["error": .error(error)])
                }
            }
        }
    }
}

/// A service run by ``PostgresLocksLifecycle``: when it stops on its own, says so at once and
/// applies its ``ServiceStopPolicy``.
private struct WatchedService: Service {
    let service: any Service
    let policy: ServiceStopPolicy
    let lifecycle: PostgresLocksLifecycle
    let application: Application
    let logger: Logger

    init(_ service: any Service, policy: ServiceStopPolicy, lifecycle: PostgresLocksLifecycle, application: Application, logger: Logger) {
        self.service = service
        self.policy = policy
        self.lifecycle = lifecycle
        self.application = application
        self.logger = logger
    }

    func run() async throws {
        let name = "\(type(of: service))"
        do {
            try await service.run()
            guard !lifecycle.isShuttingDown else { return }
            logger.notice("a PostgresLocks service stopped on its own", metadata: ["service": "\(name)", "then": "\(policy.kind)"])
        } catch {
            guard !lifecycle.isShuttingDown else { throw error }
            logger.error("a PostgresLocks service stopped with an error", metadata: ["service": "\(name)", "error": .error(error), "then": "\(policy.kind)"])
        }
        if policy == .shutDownApplication {
            application.running?.stop()
        }
    }
}
#endif
