/// Whether the library runs its hot statements (`BEGIN`, lock calls, counter updates) as named
/// prepared statements, prepared once per connection. Set per client or per connection:
///
/// ```swift
/// client.statementPreparation = .disabled
/// ```
///
/// `.automatic` (the default) prepares them: a prepared statement skips the server's parse and
/// plan, which matters when the server shares the client's cores (`pglock bench counter`
/// measured 1.3–1.5× the throughput of unnamed statements). It falls back to unnamed statements
/// for the client, and logs it once, when the connections go through a transaction-pooling
/// proxy (found by the pooling probe a client runs on first use), or when the server no longer
/// has a statement the library had just prepared on the same connection (SQLSTATE 26000 twice
/// on one connection, or on the very call that prepared it): statements prepared on one server
/// session are not there on the next.
///
/// The hot statements include `BEGIN` and `COMMIT`: a body that runs `DEALLOCATE ALL` inside a
/// checked transaction makes its `COMMIT` fail (``PostgresLocksError/Code/transactionAborted``,
/// SQLSTATE 26000, nothing committed). User statements (`Transaction.query`) are never
/// prepared by the library.
public struct StatementPreparation: Sendable, Hashable, CustomStringConvertible {
    private enum Choice: Hashable { case automatic, disabled }
    private let choice: Choice

    /// Prepare hot statements; fall back to unnamed ones where prepared statements do not survive.
    public static let automatic = StatementPreparation(choice: .automatic)
    /// Never prepare: every statement is sent unnamed (parsed on every run).
    public static let disabled = StatementPreparation(choice: .disabled)

    public var description: String { choice == .automatic ? "automatic" : "disabled" }

    /// How many statements are kept prepared per connection; beyond that, statements run unnamed.
    static let capacityPerConnection = 64
}
