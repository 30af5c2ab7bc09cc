/// Runs `work` for each of `count` workers at once (numbered from 0) and returns their
/// results in the order they finished.
func concurrently<Result: Sendable>(
    _ count: Int,
    _ work: @escaping @Sendable (_ worker: Int) async throws -> Result
) async throws -> [Result] {
    try await withThrowingTaskGroup(of: Result.self) { group in
        for worker in 0..<count {
            group.addTask { try await work(worker) }
        }
        return try await group.reduce(into: []) { $0.append($1) }
    }
}
