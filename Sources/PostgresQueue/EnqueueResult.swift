/// What an enqueue did.
public struct EnqueueResult: Sendable, Hashable, Codable {
    /// The ids of the jobs inserted, in the order given (skipped ones left out).
    public var ids: [Int64]
    /// Unique keys whose job was skipped because a live job (available or running) with the
    /// same key and queue already exists, or an earlier job of the same batch had it.
    public var skippedUniqueKeys: [String]
}
