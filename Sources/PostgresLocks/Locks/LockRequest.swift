/// One key to lock, and how.
public struct LockRequest: Sendable, Hashable, Codable {
    /// The key.
    public var key: LockKey
    /// Exclusive or shared.
    public var mode: LockMode

    /// Creates a request.
    public init(_ key: LockKey, mode: LockMode = .exclusive) {
        self.key = key
        self.mode = mode
    }

    /// Puts many requests into the one order every caller uses, so that callers locking
    /// overlapping sets can never deadlock each other:
    /// - each key appears once;
    /// - a key asked for both shared and exclusive is taken exclusive (taking shared then
    ///   exclusive on one key in one session would wait on itself only if another session is
    ///   queued, and upgrading is not atomic);
    /// - keys are sorted by ``LockKey``'s total order (keyspace, then value), which is the
    ///   order of the hashed keys, not of the names they came from (names that collide still sort consistently).
    public static func normalize<S: Sequence>(_ requests: S) -> [LockRequest] where S.Element == LockRequest {
        var strongest: [LockKey: LockMode] = [:]
        for request in requests {
            if strongest[request.key] == .exclusive { continue }
            strongest[request.key] = request.mode
        }
        return strongest.map { LockRequest($0.key, mode: $0.value) }.sorted { $0.key < $1.key }
    }
}
