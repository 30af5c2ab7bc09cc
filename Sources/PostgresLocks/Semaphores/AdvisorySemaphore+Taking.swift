import Logging
import PostgresNIO

extension AdvisorySemaphore {
    /// Takes a permit in `scope`: first any free one, in one statement run by `run`; if none
    /// (and `wait` allows waiting), the permit with the fewest waiters, through `waitFor`
    /// (a lock wait on the server that throws ``PostgresLocksError/Code/lockTimeout`` when it
    /// expires).
    ///
    /// - Returns: the index of the permit taken.
    /// - Throws: ``PostgresLocksError/Code/lockTimeout`` when none was granted.
    func takePermit(
        scope: LockScope,
        wait: LockWait,
        logger: Logger,
        run: (PreparedSQL) async throws -> [PostgresRow],
        waitFor: (LockKey) async throws -> Void
    ) async throws -> Int {
        let order = tryOrder(startingAt: Int.random(in: 0..<permits))
        func record(_ outcome: LockMetrics.Outcome) {
            LockMetrics.record(outcome, scope: scope, mode: .exclusive, keys: 1, waited: nil, logger: logger, key: "\(self)")
        }
        if let row = try await run(Self.tryPermitsStatement(order, scope: scope)).first {
            record(.acquired(contended: false))
            return try Self.permitIndex(row)
        }
        guard wait != .immediately else {
            record(.notAcquired)
            throw PostgresLocksError(code: .lockTimeout, message: "all \(permits) permits of \(self) are held")
        }
        let index = try Self.permitIndex(try await run(Self.shortestQueueStatement(order))[0])
        do {
            try await waitFor(permitKey(index))
        } catch let error as PostgresLocksError where error.code == .lockTimeout {
            throw PostgresLocksError(code: .lockTimeout, message: "no permit of \(self) was granted within the wait", underlying: error)
        }
        return index
    }
}
