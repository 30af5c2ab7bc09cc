/// One side's measurement: its latencies and the client CPU per operation.
typealias SideMeasurement = (stats: LatencyStats, cpuMicrosPerOperation: Double)

/// Our side and the driver ceiling measured in turns: each side's time split into `rounds`,
/// the sides alternating (and which goes first alternating too), so that a shared, noisy
/// machine's drift falls on both alike; each side's rounds are then combined into one.
struct BenchTurns {
    /// How many rounds each side's time is split into (when there are two sides).
    var rounds: Int
    /// Where each round is announced and its result shown.
    var progress: Progress

    /// Runs the rounds and returns the comparison (without pgbench). `ours` and `ceiling` each
    /// measure one round; `ceiling` nil measures our side alone, in one round.
    func compare(
        ours: (description: String, measure: () async throws -> SideMeasurement),
        ceiling: (description: String, measure: () async throws -> SideMeasurement)?
    ) async throws -> BenchComparison {
        let rounds = ceiling == nil ? 1 : self.rounds
        var oursRounds: [SideMeasurement] = [], ceilingRounds: [SideMeasurement] = []
        for index in 0..<rounds {
            let label = rounds > 1 ? " [round \(index + 1)/\(rounds)]" : ""
            for ceilingTurn in index % 2 == 0 ? [false, true] : [true, false] {
                if ceilingTurn {
                    guard let ceiling else { continue }
                    progress.step("driver ceiling: \(ceiling.description)\(label)")
                    ceilingRounds.append(try await ceiling.measure())
                    progress.done(ceilingRounds.last!.stats.summary)
                } else {
                    progress.step("ours: \(ours.description)\(label)")
                    oursRounds.append(try await ours.measure())
                    progress.done(oursRounds.last!.stats.summary)
                }
            }
        }
        let combinedOurs = Self.combining(oursRounds)
        var comparison = BenchComparison(ours: combinedOurs.stats, oursCPUMicrosPerOperation: combinedOurs.cpuMicrosPerOperation)
        if !ceilingRounds.isEmpty {
            let combined = Self.combining(ceilingRounds)
            comparison.driverCeiling = combined.stats
            comparison.driverCeilingCPUMicrosPerOperation = combined.cpuMicrosPerOperation
        }
        return comparison
    }

    /// Rounds of one side as one measurement: latencies together, CPU per operation weighted
    /// by each round's operations.
    static func combining(_ rounds: [SideMeasurement]) -> SideMeasurement {
        let operations = rounds.reduce(0.0) { $0 + Double($1.stats.operations) }
        let cpu = rounds.reduce(0.0) { $0 + $1.cpuMicrosPerOperation * Double($1.stats.operations) } / max(operations, 1)
        return (LatencyStats.combining(rounds.map(\.stats)), cpu)
    }
}

extension BenchHarness {
    /// This harness with its measured time split into `rounds` (see ``BenchTurns``).
    func splitInto(_ rounds: Int) -> BenchHarness {
        var round = self
        round.duration = duration / rounds
        return round
    }
}
