import Foundation
import Synchronization

/// What a soak run counted while it ran: faults injected, operations done, and how calls
/// ended. Thread-safe; every worker adds to it.
package final class SoakTallies: Sendable {
    /// The counts at one moment.
    package struct Snapshot: Sendable, Codable, Hashable {
        /// Backends terminated with `pg_terminate_backend`.
        package var terminations = 0
        /// Server restarts (stop immediately, start again).
        package var restarts = 0
        /// Lock critical sections that committed and were confirmed to the client.
        package var lockSections = 0
        /// Gapless numbers allocated and confirmed committed.
        package var numbers = 0
        /// Ingestion batches accepted (a batch resent after a fault counts once, when accepted).
        package var ingestBatches = 0
        /// Events (keys) sent for ingestion, duplicates and resends included.
        package var ingestEvents = 0
        /// Keys reported new to an ingestion call (committed, the handler's effect with them).
        package var ingestedKeys = 0
        /// Jobs enqueued and confirmed.
        package var jobsEnqueued = 0
        /// Handler runs (attempts), including runs a fault interrupted.
        package var handlerRuns = 0
        /// Operations that failed because of a fault and were retried (connection lost, server restarting).
        package var retried = 0
        /// Commits whose outcome the client could not know (the connection died at COMMIT);
        /// the database decides, and the checks count what is there.
        package var ambiguousCommits = 0
        /// Storm calls made (lock waits that were cancelled, timed out or granted).
        package var stormCalls = 0
        /// Storm calls cancelled while waiting.
        package var stormCancelled = 0
        /// Storm calls that gave up at their deadline (`lockTimeout`).
        package var stormTimedOut = 0
        /// Storm calls that got their lock.
        package var stormAcquired = 0
        /// The longest time from `cancel()` to a cancelled call's return, in milliseconds.
        package var maxCancelLatencyMilliseconds = 0
        /// The longest time a `.timeout(d)` call took beyond `d`, in milliseconds (pool waits included).
        package var maxTimeoutOvershootMilliseconds = 0
        /// Calls that did not return within their deadline plus the allowed bound.
        package var hungCalls = 0
        /// The most critical sections of one key seen running at once on the client, including
        /// sections whose backend had already been terminated (they cannot commit).
        package var maxInsideObserved = 0
        /// Calls that nobody cancelled but that failed as cancelled (a server-side cancel meant for
        /// another call landed on theirs).
        package var strayCancels = 0
        /// Errors that are not an expected consequence of the faults.
        package var unexpectedErrors = 0
    }

    private let state = Mutex(Snapshot())
    private let faultKinds = Mutex<[String: Int]>([:])

    /// Counts a fault-caused failure by what it said (for the report).
    package func fault(_ error: any Error) {
        var text = String(describing: error)
        if let cut = text.firstIndex(of: "(") , text.distance(from: text.startIndex, to: cut) < 40 { text = String(text[..<cut]) + String(text[cut...].prefix(60)) }
        text = String(text.prefix(100))
        faultKinds.withLock { $0[text, default: 0] += 1 }
    }

    /// The most frequent fault-caused failures, most frequent first.
    package var topFaults: [String] {
        faultKinds.withLock { $0 }.sorted { $0.value > $1.value }.prefix(6).map { "\($0.value)× \($0.key)" }
    }
    private let samples = Mutex<[String]>([])

    /// Adds to the counts.
    package func update(_ body: (inout Snapshot) -> Void) {
        state.withLock { body(&$0) }
    }

    /// The counts now.
    package var snapshot: Snapshot { state.withLock { $0 } }

    /// Records an unexpected error (the first 20 are kept as samples; `first` puts it before the others).
    package func unexpected(_ error: any Error, during what: String, first: Bool = false) {
        update { $0.unexpectedErrors += 1 }
        let sample = "\(what): \(String(describing: error))"
        samples.withLock {
            if first { $0.insert(sample, at: 0) } else if $0.count < 20 { $0.append(sample) }
            if $0.count > 20 { $0.removeLast() }
        }
    }

    /// Keeps a note for the report (the first 20).
    package func note(_ text: String) {
        samples.withLock { if $0.count < 20 { $0.append(text) } }
    }

    /// Samples of unexpected errors.
    package var unexpectedSamples: [String] { samples.withLock { $0 } }
}

extension SoakTallies.Snapshot {
    /// One line for progress output.
    package var line: String {
        "faults \(terminations) terminated + \(restarts) restarts + \(stormCancelled) cancelled + \(stormTimedOut) timed out; "
            + "ops \(lockSections) lock sections, \(numbers) numbers, \(ingestedKeys) ingested keys (\(ingestBatches) batches), \(jobsEnqueued) jobs (\(handlerRuns) handler runs); "
            + "\(retried) retried, \(ambiguousCommits) ambiguous commits, \(hungCalls) hung, \(unexpectedErrors) unexpected errors"
    }
}
