import Fluent
import Foundation

/// A tenant's document: its `number` is the tenant's next gapless number (1, 2, 3, …),
/// allocated in the transaction that saves it.
final class Document: Model, @unchecked Sendable {
    static let schema = "documents"

    @ID(key: .id) var id: UUID?
    @Field(key: "tenant") var tenant: String
    @Field(key: "number") var number: Int64
    @Field(key: "title") var title: String
    @OptionalField(key: "indexed_at") var indexedAt: Date?
    @Timestamp(key: "created_at", on: .create) var createdAt: Date?

    init() {}

    init(tenant: String, number: Int64, title: String) {
        self.tenant = tenant
        self.number = number
        self.title = title
    }
}

/// Creates `documents`: one number per tenant and one title per tenant (a repeated title is
/// refused by the database, after the number was allocated: the rollback gives it back).
struct CreateDocument: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Document.schema)
            .id()
            .field("tenant", .string, .required)
            .field("number", .int64, .required)
            .field("title", .string, .required)
            .field("indexed_at", .datetime)
            .field("created_at", .datetime)
            .unique(on: "tenant", "number")
            .unique(on: "tenant", "title")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Document.schema).delete()
    }
}
