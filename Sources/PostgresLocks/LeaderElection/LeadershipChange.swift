/// A change of this instance's role in a ``LeaderElection``, as delivered by
/// ``LeaderElection/leadershipChanges()``.
public enum LeadershipChange: Sendable, Hashable, CustomStringConvertible {
    /// This instance leads for the term of `token`; fence its writes with it.
    case leader(FencingToken)
    /// This instance does not lead (yet, or any more): stop acting as leader.
    case follower

    /// The token if this is ``leader(_:)``.
    public var token: FencingToken? {
        if case .leader(let token) = self { return token }
        return nil
    }

    /// `"leader(jobs#3)"` or `"follower"`.
    public var description: String {
        switch self {
        case .leader(let token): return "leader(\(token))"
        case .follower: return "follower"
        }
    }
}
