import Foundation
import PostgresLocks

/// The work of a fault soak: how many tasks of each kind run, written `kind=count` pairs joined
/// by commas (`lock=6,counter=6,ingest=6,queue=2,storm=60`). A kind left out runs nothing, so
/// `queue=2` soaks the queue alone.
package struct SoakWork: Sendable, Hashable, CustomStringConvertible {
    /// A kind of work.
    package enum Kind: String, CaseIterable, Sendable {
        /// Tasks running lock critical sections (`withAdvisoryLock`).
        case lock
        /// Tasks allocating gapless numbers.
        case counter
        /// Tasks ingesting batches of business keys (about 30% duplicates) through
        /// `ExactlyOnceIngestion`.
        case ingest
        /// `QueueWorker` services (each runs 4 jobs at once).
        case queue
        /// Lock waits per cancellation-storm wave.
        case storm

        /// The most a count of this kind may be.
        var limit: Int { self == .storm ? 10_000 : 1_000 }
    }

    /// The count of each kind; a kind missing here runs nothing.
    package private(set) var counts: [Kind: Int]

    /// The work of a default soak: every kind.
    package static let standard = SoakWork(counts: [.lock: 6, .counter: 6, .ingest: 6, .queue: 2, .storm: 60])

    private init(counts: [Kind: Int]) {
        self.counts = counts
    }

    /// Reads `kind=count` pairs joined by commas.
    ///
    /// - Throws: ``PostgresLocksError/Code/invalidArgument`` naming the pair that is wrong: no
    ///   `=`, an unknown kind, a kind given twice, or a count that is not a whole number from 0
    ///   to the kind's limit (1,000; 10,000 for `storm`); or for empty text.
    package init(parsing text: String) throws(PostgresLocksError) {
        var counts: [Kind: Int] = [:]
        for pair in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw PostgresLocksError(code: .invalidArgument, message: "the work \"\(pair)\" is not kind=count (for example lock=6,queue=2)")
            }
            let name = parts[0].trimmingCharacters(in: .whitespaces)
            guard let kind = Kind(rawValue: name) else {
                throw PostgresLocksError(code: .invalidArgument, message: "unknown work \"\(name)\": the kinds are \(Kind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard counts[kind] == nil else { throw PostgresLocksError(code: .invalidArgument, message: "the work \(name) is given twice") }
            guard let count = Int(parts[1].trimmingCharacters(in: .whitespaces)), (0...kind.limit).contains(count) else {
                throw PostgresLocksError(code: .invalidArgument, message: "the count of \(name) must be a whole number from 0 to \(kind.limit); found \"\(parts[1])\"")
            }
            counts[kind] = count
        }
        self.init(counts: counts)
    }

    /// How many tasks of `kind` run (0 when it is not named).
    package subscript(kind: Kind) -> Int { counts[kind] ?? 0 }

    /// The pairs, in the kinds' order: text ``init(parsing:)`` reads back to the same work.
    package var description: String {
        Kind.allCases.compactMap { kind in counts[kind].map { "\(kind.rawValue)=\($0)" } }.joined(separator: ",")
    }

    /// Sets the soak's worker counts to this work (a kind not named to 0).
    package func apply(to configuration: inout SoakConfiguration) {
        configuration.lockWorkers = self[.lock]
        configuration.counterWorkers = self[.counter]
        configuration.ingestWorkers = self[.ingest]
        configuration.queueWorkers = self[.queue]
        configuration.stormTasks = self[.storm]
    }
}
