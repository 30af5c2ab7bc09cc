/// `pglock queue …` found no queue tables in the schema it was given: says where the schema
/// came from, how to choose another, and which schemas on the server do hold queue tables.
struct QueueSchemaError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a stable name.
    struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's name (for scripts that match it).
        let name: String
        /// The chosen schema has no queue tables.
        static let queueTablesMissing = Code(name: "queueTablesMissing")

        var description: String { name }
    }

    /// What went wrong.
    let code: Code
    /// The schema looked in.
    let schema: String
    /// Where it came from: `--schema`, `PGLOCK_QUEUE_SCHEMA` or the default.
    let source: QueueCommand.SchemaSource
    /// The schemas on the server that hold queue tables.
    let installedSchemas: [String]

    /// One readable paragraph, ending with the code.
    var description: String {
        var text = "no queue tables in schema \(schema) (\(source.description)); "
        text += "choose the queue's schema with --schema or the environment variable \(QueueCommand.schemaVariable). "
        if installedSchemas.isEmpty {
            text += "No schema on this server holds queue tables (JobQueue.migrate creates them)."
        } else {
            let listed = installedSchemas.map { $0.terminalSafe }.joined(separator: ", ")
            text += "Schemas on this server with queue tables: \(listed)."
        }
        return text + " [\(code)]"
    }
}
