import Fluent
import PostgresLocks
import PostgresLocksVapor
import PostgresQueue
import Vapor

/// `POST /tenants/:tenant/documents` and `GET /tenants/:tenant/documents`, and
/// `POST /tenants/:tenant/documents/:number/publish`.
struct DocumentController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let documents = routes.grouped("tenants", ":tenant", "documents")
        documents.post(use: create)
        documents.get(use: list)
        documents.post(":number", "publish", use: publish)
    }

    struct NewDocument: Content {
        var title: String
    }

    struct DocumentResponse: Content {
        var id: UUID
        var tenant: String
        var number: Int64
        var title: String
    }

    /// Saves a document with the tenant's next number and enqueues its indexing, in one Fluent
    /// transaction: all three commit together, or none does (and the number is given again).
    @Sendable
    func create(req: Request) async throws -> Response {
        let tenant = try req.parameters.require("tenant")
        let input = try req.content.decode(NewDocument.self)
        guard !input.title.isEmpty, input.title.count <= 200 else {
            throw Abort(.badRequest, reason: "title must be 1 to 200 characters")
        }
        let library = req.application.library
        let id = UUID()
        let document = try await req.db.transaction { db in
            // The number and the job first, in the library; then the row, by Fluent. A title
            // the tenant already has fails the insert: the rollback takes back the number and
            // the job with it (409 to the client, through PostgresErrorMiddleware).
            let number = try await req.postgresLocks.withAdoptedTransaction(on: db) { tx in
                let number = try await library.numbers.next(scope: tenant, in: tx)
                try await library.queue.enqueue(try NewJob(IndexDocument(documentID: id)), in: tx)
                return number
            }
            let document = Document(tenant: tenant, number: number, title: input.title)
            document.id = id
            try await document.create(on: db)
            return document
        }
        let body = DocumentResponse(id: try document.requireID(), tenant: tenant, number: document.number, title: document.title)
        return try await body.encodeResponse(status: .created, for: req)
    }

    /// The tenant's documents in number order.
    @Sendable
    func list(req: Request) async throws -> [DocumentResponse] {
        let tenant = try req.parameters.require("tenant")
        return try await Document.query(on: req.db).filter(\.$tenant == tenant).sort(\.$number).all().map {
            DocumentResponse(id: try $0.requireID(), tenant: $0.tenant, number: $0.number, title: $0.title)
        }
    }

    /// Publishes a document: one publisher at a time per document, by a transaction-scoped
    /// advisory lock taken without waiting. A second publisher at the same moment gets
    /// 503 with `Retry-After` (the library's `lockTimeout`, mapped by PostgresLocksVapor).
    @Sendable
    func publish(req: Request) async throws -> HTTPStatus {
        let tenant = try req.parameters.require("tenant")
        let number = try req.parameters.require("number", as: Int64.self)
        try await req.db.transaction { db in
            try await req.postgresLocks.withAdoptedTransaction(on: db) { tx in
                try await tx.advisoryLock(.hashed("publish:\(tenant):\(number)"), wait: .immediately)
            }
            guard try await Document.query(on: db).filter(\.$tenant == tenant).filter(\.$number == number).first() != nil else {
                throw Abort(.notFound)
            }
        }
        return .noContent
    }
}
