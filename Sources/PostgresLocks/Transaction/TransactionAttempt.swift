/// How one attempt of a checked transaction runs, carried from the runner to the connection
/// that runs it: which attempt it is, whether it reads its transaction id before `COMMIT`
/// (so that a `COMMIT` lost in flight can be settled, see ``RetryPolicy/resolveCommitOutcome``),
/// and the hot statement chained right after `BEGIN`, if any.
struct TransactionAttempt: Sendable {
    /// 1 for the first run of a transaction, 2 for its first retry, and so on.
    var number = 1
    /// Read the transaction id before `COMMIT`; a lost `COMMIT` then throws ``UnsettledCommit``.
    var readsTransactionID = false
    /// A statement the body would send first (such as a try-lock), chained after `BEGIN` so that
    /// the caller waits once for both; its rows are handed to the body.
    var leading: PreparedSQL?
}
