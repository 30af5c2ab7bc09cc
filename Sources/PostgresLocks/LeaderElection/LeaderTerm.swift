import Foundation
import Logging
import PostgresNIO

/// One election's current term as stored in a terms table, and who holds its leader lock now.
public struct LeaderTerm: Sendable, Hashable, Codable {
    /// The election's name.
    public var election: String
    /// The current term (the fencing token of the leader that started it).
    public var term: Int64
    /// The instance that started the term.
    public var holder: String
    /// When the term started.
    public var since: Date
    /// The server process holding the election's lock (`LockKey.hashed(election)`) now, or nil
    /// when nobody holds it (no leader at the moment, or the election uses another key).
    public var lockHolderPID: Int32?
    /// The `application_name` of that process.
    public var lockHolderApplication: String?

    /// Reads every election's term from `table`, with the current holder of each election's
    /// default lock. Empty when the table does not exist.
    public static func all(
        in table: QualifiedName = LeaderElection.Configuration.defaultTermsTable,
        on client: PostgresClient, logger: Logger
    ) async throws -> [LeaderTerm] {
        let exists = try await client.checkedQuery(LeaderTermsSQL.exists(table), logger: logger).rows.first?.decode(Bool.self) ?? false
        guard exists else { return [] }
        var terms: [LeaderTerm] = []
        for row in try await client.checkedQuery(LeaderTermsSQL.list(table), logger: logger).rows {
            let (election, term, holder, since) = try row.decode((String, Int64, String, Date).self)
            terms.append(LeaderTerm(election: election, term: term, holder: holder, since: since))
        }
        guard !terms.isEmpty else { return terms }
        let identities = terms.map { LockKey.hashed($0.election).pgLocksIdentity }
        let rows = try await client.checkedQuery(
            LeaderTermsSQL.lockHolders(classids: identities.map { Int64($0.classid) }, objids: identities.map { Int64($0.objid) }),
            logger: logger
        ).rows
        var holders: [LockKey: (Int32, String?)] = [:]
        for row in rows {
            let (classid, objid, pid, application) = try row.decode((Int64, Int64, Int32, String?).self)
            if let key = LockKey(classid: UInt32(truncatingIfNeeded: classid), objid: UInt32(truncatingIfNeeded: objid), objsubid: 1) {
                holders[key] = (pid, application)
            }
        }
        for index in terms.indices {
            if let (pid, application) = holders[.hashed(terms[index].election)] {
                terms[index].lockHolderPID = pid
                terms[index].lockHolderApplication = application
            }
        }
        return terms
    }
}
