/// Proof of leadership for one term of a ``LeaderElection``: a number that only grows.
///
/// Every time an instance becomes leader it increments the election's row in the terms table
/// and receives the new value as its token. A leader that was deposed without noticing (its
/// connection died, it paused for a long GC-like stall) still holds an *old* token; writes
/// checked with ``Transaction/requireCurrentTerm(_:)`` are then rejected with
/// ``PostgresLocksError/Code/fenced``, because the stored term is already larger.
///
/// ```swift
/// for await change in election.leadershipChanges() {
///     guard case .leader(let token) = change else { continue }
///     try await client.withCheckedTransaction(logger: logger) { tx in
///         try await tx.requireCurrentTerm(token)   // throws .fenced once another instance leads
///         try await tx.query("UPDATE schedule SET owner = \(instanceID)")
///     }
/// }
/// ```
///
/// Tokens of the same election compare by ``term``: the larger one is the newer leader.
/// Pass ``term`` to other systems (an object store, a queue) that can store the highest term
/// they have seen and refuse smaller ones.
public struct FencingToken: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The election's name: its row in ``termsTable``.
    public let election: String
    /// The term number: 1 for the first leader ever, then one more per change of leader.
    public let term: Int64
    /// The table that stores the election's current term.
    public let termsTable: QualifiedName

    /// Creates a token (normally you receive one from ``LeaderElection``; this initializer
    /// exists to rebuild a token that was passed along as its parts).
    public init(election: String, term: Int64, termsTable: QualifiedName) {
        self.election = election
        self.term = term
        self.termsTable = termsTable
    }

    /// Orders tokens by table, election and then term, so that tokens of one election
    /// compare by term.
    public static func < (lhs: FencingToken, rhs: FencingToken) -> Bool {
        (lhs.termsTable.quoted, lhs.election, lhs.term) < (rhs.termsTable.quoted, rhs.election, rhs.term)
    }

    /// `"jobs-scheduler#7"`: the election and the term.
    public var description: String { "\(election)#\(term)" }
}
