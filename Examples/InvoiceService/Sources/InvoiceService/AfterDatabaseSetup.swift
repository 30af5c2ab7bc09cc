import ServiceLifecycle

/// Runs a service once the database is set up: the queue worker must not claim from tables
/// that do not exist yet. Graceful shutdown reaches the wrapped service as usual.
struct AfterDatabaseSetup<Wrapped: Service>: Service {
    /// The setup to wait for.
    let setup: DatabaseSetup
    /// The service to run afterwards.
    let wrapped: Wrapped

    func run() async throws {
        try await setup.ensure()
        try await wrapped.run()
    }
}
