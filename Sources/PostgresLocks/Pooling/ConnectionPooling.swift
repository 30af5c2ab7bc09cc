/// What sits between a client connection and the server session that serves it, as far as
/// session state (session advisory locks, `LISTEN`, prepared statements) is concerned.
///
/// Found by ``PostgresNIO/PostgresClient/connectionPooling(logger:)``, which asks which server
/// process serves each of two client connections, in turn.
public enum ConnectionPooling: String, Sendable, Hashable, Codable, CustomStringConvertible {
    /// Every client connection keeps one server session for its whole life: a direct
    /// connection, or a pooler in session mode. Session locks, `LISTEN` and prepared
    /// statements work.
    case sessionPerConnection
    /// Server sessions are handed out per transaction (a pooler such as PgBouncer in
    /// transaction or statement mode): two client connections can share a server process,
    /// and one client connection can move between them. Transaction-scoped features work;
    /// session locks, `LISTEN` and statements prepared across transactions do not.
    case transactionPooling
    /// The probe could not tell (it needs two connections at once, or the server refused it).
    case unknown

    public var description: String {
        switch self {
        case .sessionPerConnection: return "a server session per connection (direct, or session pooling)"
        case .transactionPooling: return "transaction pooling"
        case .unknown: return "unknown"
        }
    }
}

/// One round of the pooling probe: the server process that runs a statement of connection A,
/// then one of connection B, then one of A again.
struct PoolingProbeRound: Sendable, Hashable {
    /// The process that ran A's first statement.
    var pidOfA: Int32
    /// The process that ran B's statement.
    var pidOfB: Int32
    /// The process that ran A's second statement.
    var pidOfAAgain: Int32

    /// What this round shows. Pure.
    ///
    /// A server process serves one session, and a session belongs to one client connection
    /// unless a pooler hands sessions out per transaction:
    /// - B's statement ran on a process that served A in this round: two client connections
    ///   share a server process (an idle pooler hands B the process A just released);
    /// - A's two statements ran on different processes: A's session moved.
    /// Either is transaction pooling. Otherwise the round is consistent with a server session
    /// per connection (direct, or session pooling).
    var verdict: ConnectionPooling {
        if pidOfB == pidOfA || pidOfB == pidOfAAgain || pidOfA != pidOfAAgain { return .transactionPooling }
        return .sessionPerConnection
    }

    /// Folds rounds into one verdict: any round that shows pooling decides; otherwise every
    /// round must agree on a session per connection. Pure.
    static func verdict(of rounds: [PoolingProbeRound]) -> ConnectionPooling {
        let verdicts = rounds.map(\.verdict)
        if verdicts.contains(.transactionPooling) { return .transactionPooling }
        if !verdicts.isEmpty && verdicts.allSatisfy({ $0 == .sessionPerConnection }) { return .sessionPerConnection }
        return .unknown
    }
}
