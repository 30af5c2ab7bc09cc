import Logging
import PostgresLocks
import PostgresNIO

/// The `invoices` table and the statements the service runs on it. The table name is a
/// validated identifier; tenants, customers and amounts are always bound values.
struct InvoiceStore: Sendable {
    /// The table holding invoices: one row per `(tenant, number)`.
    let table: QualifiedName

    /// A store on `table` (optionally `schema`-qualified).
    ///
    /// - Throws: `PostgresLocksError` (`invalidArgument`) for a name that is not a plain identifier.
    init(table: String = "invoices", schema: String? = nil) throws {
        self.table = try QualifiedName(schema: schema, table)
    }

    /// Creates the table if it does not exist. The primary key makes a duplicate number
    /// impossible even if the counter were misused.
    func createTable(in transaction: Transaction) async throws {
        try await transaction.query("""
            CREATE TABLE IF NOT EXISTS \(identifier: table) (
                tenant text NOT NULL,
                number bigint NOT NULL CHECK (number >= 1),
                customer text NOT NULL,
                amount_cents bigint NOT NULL CHECK (amount_cents >= 0),
                created_at timestamptz NOT NULL DEFAULT now(),
                sent_at timestamptz,
                PRIMARY KEY (tenant, number)
            )
            """)
    }

    /// Inserts invoice `number` of `tenant` inside the caller's transaction.
    func insert(_ invoice: NewInvoice, tenant: Tenant, number: Int64, in transaction: Transaction) async throws {
        try await transaction.query("""
            INSERT INTO \(identifier: table) (tenant, number, customer, amount_cents)
            VALUES (\(tenant.name), \(number), \(invoice.customer), \(invoice.amountCents))
            """)
    }

    /// Up to `limit` invoices of `tenant` with numbers above `after`, in number order.
    func list(tenant: Tenant, after: Int64, limit: Int, on client: PostgresClient, logger: Logger) async throws -> [InvoiceList.Item] {
        let rows = try await client.checkedQuery("""
            SELECT number, customer, amount_cents, sent_at IS NOT NULL FROM \(identifier: table)
            WHERE tenant = \(tenant.name) AND number > \(after)
            ORDER BY number LIMIT \(Int64(limit))
            """, logger: logger).rows
        return try rows.map { row in
            let (number, customer, amountCents, sent) = try row.decode((Int64, String, Int64, Bool).self)
            return InvoiceList.Item(number: number, customer: customer, amountCents: amountCents, sent: sent)
        }
    }

    /// Records that invoice `number` of `tenant` was sent, inside the caller's transaction.
    ///
    /// - Returns: `false` when there is no such unsent invoice (already sent, or unknown).
    func markSent(tenant: String, number: Int64, in transaction: Transaction) async throws -> Bool {
        let result = try await transaction.query("""
            UPDATE \(identifier: table) SET sent_at = now()
            WHERE tenant = \(tenant) AND number = \(number) AND sent_at IS NULL
            """)
        return (result.metadata.rows ?? 0) > 0
    }
}
