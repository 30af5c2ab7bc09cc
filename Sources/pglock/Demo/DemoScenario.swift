import PglockHarness

/// A demo scenario: sets itself up, runs concurrent work, checks its invariant in the database.
protocol DemoScenario: Sendable {
    /// A short name.
    var name: String { get }
    /// Whether it needs server sessions of its own (session locks, leader election), which a
    /// transaction-pooling proxy does not give.
    var needsServerSession: Bool { get }
    /// Runs and returns the report rows.
    func run(context: DemoContext) async throws -> [ScenarioOutcome]
}

extension DemoScenario {
    var needsServerSession: Bool { false }
}
