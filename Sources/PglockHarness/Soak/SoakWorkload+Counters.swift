import PostgresLocks
import PostgresNIO

extension SoakWorkload {
    /// Allocates gapless numbers from every strategy in turn, recording each number next to the
    /// counter in the same transaction.
    package func runCounterWorker(_ worker: Int, context: SoakContext, state: SoakState, stop: SetOnceFlag) async {
        let issued = table("issued")
        guard let counters = try? counters(), !counters.isEmpty else { return }
        var turn = worker
        await repeatOperations(until: stop) {
            let counter = counters[turn % counters.count]
            turn += 1
            let scope = "scope-\(Int.random(in: 0..<configuration.counterScopes))"
            let op = state.newOp()
            await attempt(during: "counter \(counter.strategy.rawValue)") { bodyFinished in
                try await context.client.withCheckedTransaction(logger: context.logger) { tx in
                    let number = try await counter.next(scope: scope, in: tx)
                    try await tx.query("INSERT INTO \(identifier: issued) (strategy, scope, number, op) VALUES (\(counter.strategy.rawValue), \(scope), \(number), \(op))")
                    bodyFinished.set()
                }
                state.confirmedCounterOps.withLock { _ = $0.insert(op) }
                tallies.update { $0.numbers += 1 }
            }
        }
    }

    /// Per strategy and scope: the recorded numbers are exactly 1…n, once each; the counter's
    /// own table agrees; every confirmed allocation is there.
    package func checkCounters(_ context: SoakContext, state: SoakState) async throws -> SoakFindings {
        var findings = SoakFindings()
        let issued = table("issued")
        let rows = try await context.client.checkedQuery(
            "SELECT strategy, scope, count(*), count(DISTINCT number), COALESCE(max(number), 0) FROM \(identifier: issued) GROUP BY strategy, scope",
            logger: context.logger
        ).rows
        var recorded: [String: [String: Int64]] = [:]
        for row in rows {
            let (strategy, scope, count, distinct, maximum) = try row.decode((String, String, Int64, Int64, Int64).self)
            findings.duplicateNumbers += Int(count - distinct)
            // Numbers start at 1: every number of 1…max that is missing is a gap.
            findings.gaps += Int(maximum - distinct)
            recorded[strategy, default: [:]][scope] = count
        }
        for counter in try counters() {
            let byScope = recorded[counter.strategy.rawValue] ?? [:]
            switch counter.strategy {
            case .counterRow:
                // The row holds the last number handed out: it must equal how many were recorded.
                let rows = try await context.client.checkedQuery(
                    "SELECT \(identifier: counter.scopeColumn), \(identifier: counter.numberColumn) FROM \(identifier: counter.table)", logger: context.logger
                ).rows
                var seen = 0
                for row in rows {
                    let (scope, value) = try row.decode((String, Int64).self)
                    if byScope[scope] != value { findings.counterMismatches += 1 }
                    seen += 1
                }
                findings.counterMismatches += max(0, byScope.count - seen)
            case .advisoryLock, .uniqueIndexRetry:
                // One row per number: the same set as recorded.
                let mismatched = try await context.client.checkedQuery("""
                    SELECT count(*) FROM \(identifier: counter.table) c
                    FULL JOIN (SELECT scope, number FROM \(identifier: issued) WHERE strategy = \(counter.strategy.rawValue)) i
                      ON i.scope = c.\(identifier: counter.scopeColumn) AND i.number = c.\(identifier: counter.numberColumn)
                    WHERE i.number IS NULL OR c.\(identifier: counter.numberColumn) IS NULL
                    """, logger: context.logger).rows[0].decode(Int64.self)
                findings.counterMismatches += Int(mismatched)
            }
        }
        var committed = Set<Int64>()
        for row in try await context.client.checkedQuery("SELECT op FROM \(identifier: issued)", logger: context.logger).rows {
            committed.insert(try row.decode(Int64.self))
        }
        findings.lostCommits += state.confirmedCounterOps.withLock { $0.subtracting(committed).count }
        return findings
    }
}
