import Synchronization

/// Whether the library runs its hot statements (`BEGIN`, lock calls, counter updates, queue
/// claims) as named prepared statements, prepared once per connection.
///
/// On by default: a prepared statement skips the server's parse and plan, which matters when
/// the server shares the client's cores. `pglock bench counter` measured the default counter
/// at 1.3–1.5× the throughput of unnamed statements, `pglock bench lock` at 1.05–1.2× (its
/// statement is trivial to plan). Turn it off before using the library when connections go through a
/// pooler that does not keep prepared statements across server sessions (PgBouncer before
/// 1.21 in transaction mode, or later versions with `max_prepared_statements = 0`):
///
/// ```swift
/// StatementPreparation.isEnabled = false
/// ```
///
/// User statements (`Transaction.query`) are never prepared by the library.
public enum StatementPreparation {
    private static let enabled = Atomic<Bool>(true)

    /// Whether hot statements are prepared (default `true`). Read when each statement runs.
    public static var isEnabled: Bool {
        get { enabled.load(ordering: .relaxed) }
        set { enabled.store(newValue, ordering: .relaxed) }
    }

    /// How many statements are kept prepared per connection; beyond that, statements run unnamed.
    static let capacityPerConnection = 64
}
