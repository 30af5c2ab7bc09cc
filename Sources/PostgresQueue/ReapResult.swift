/// What a reaper pass did.
public struct ReapResult: Sendable, Hashable, Codable {
    /// Jobs whose lease expired and that were made available again.
    public var reclaimed: Int
    /// Jobs whose lease expired on their last attempt, now dead.
    public var dead: Int
}
