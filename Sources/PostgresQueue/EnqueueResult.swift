/// What an enqueue did.
public struct EnqueueResult: Sendable, Hashable, Codable {
    /// The ids of the jobs inserted, in the order given (skipped ones left out).
    public var ids: [Int64]
    /// Unique keys whose job was skipped because a job with the same key and queue already
    /// exists in one of its unique states (available and running, and any others its
    /// ``UniqueOptions`` named), or an earlier job of the same batch had it.
    public var skippedUniqueKeys: [String]
}
