import PostgresLocks
import PostgresNIO

extension SoakWorkload {
    /// Critical sections under `withAdvisoryLock`: read the key's counter row, write it back
    /// plus one, log the operation. Two sections that overlapped would lose an update.
    package func runLockWorker(_ worker: Int, context: SoakContext, state: SoakState, stop: SetOnceFlag) async {
        let counters = table("lock_counters"), ops = table("lock_ops")
        await repeatOperations(until: stop) {
            let key = Int32.random(in: 0..<Int32(configuration.lockKeys))
            let op = state.newOp()
            await attempt(during: "lock section") { bodyFinished in
                try await context.client.withAdvisoryLock(.pair(namespace: namespace, id: key), wait: .timeout(.seconds(30)), logger: context.logger) { tx in
                    let start = state.now
                    let inside = state.inside.withLock { $0[key, default: 0] += 1; return $0[key]! }
                    tallies.update { $0.maxInsideObserved = max($0.maxInsideObserved, inside) }
                    defer { state.inside.withLock { $0[key, default: 1] -= 1 } }
                    let value = try await tx.query("SELECT value FROM \(identifier: counters) WHERE key = \(key)").rows[0].decode(Int64.self)
                    try await tx.query("UPDATE \(identifier: counters) SET value = \(value + 1) WHERE key = \(key)")
                    try await tx.query("INSERT INTO \(identifier: ops) (op, key) VALUES (\(op), \(key))")
                    let end = state.now
                    state.sections.withLock { $0[op] = SoakState.Section(key: key, start: start, end: end) }
                    bodyFinished.set()
                }
                state.confirmedLockOps.withLock { _ = $0.insert(op) }
                tallies.update { $0.lockSections += 1 }
            }
        }
    }

    /// Mutual exclusion and no lost update, checked in the database: every key's counter equals
    /// its logged operations; committed sections of one key never overlapped in time (a
    /// committed section's body ran while its lock was held on the server, so two bodies can
    /// overlap only if two sessions held the lock at once); every confirmed operation is there.
    package func checkLocks(_ context: SoakContext, state: SoakState) async throws -> SoakFindings {
        var findings = SoakFindings()
        let counters = table("lock_counters"), ops = table("lock_ops")
        let rows = try await context.client.checkedQuery(
            "SELECT c.key, c.value, (SELECT count(*) FROM \(identifier: ops) o WHERE o.key = c.key) FROM \(identifier: counters) c",
            logger: context.logger
        ).rows
        for row in rows {
            let (_, value, logged) = try row.decode((Int32, Int64, Int64).self)
            if value != logged { findings.lostUpdates += 1 }
        }
        var committed = Set<Int64>()
        for row in try await context.client.checkedQuery("SELECT op FROM \(identifier: ops)", logger: context.logger).rows {
            committed.insert(try row.decode(Int64.self))
        }
        findings.lostCommits += state.confirmedLockOps.withLock { $0.subtracting(committed).count }

        let sections = state.sections.withLock { $0 }
        var byKey: [Int32: [SoakState.Section]] = [:]
        for op in committed {
            guard let section = sections[op] else { continue }
            byKey[section.key, default: []].append(section)
        }
        for (_, list) in byKey {
            var latestEnd: Duration?
            for section in list.sorted(by: { $0.start < $1.start }) {
                if let latestEnd, section.start < latestEnd { findings.exclusionViolations += 1 }
                latestEnd = max(latestEnd ?? section.end, section.end)
            }
        }
        return findings
    }
}
