import Foundation

/// Our side of a benchmark against what runs the same SQL beside it: plain PostgresNIO (the
/// driver ceiling) and pgbench. Encoded as fields of the report that holds it.
struct BenchComparison: Encodable, Sendable {
    var ours: LatencyStats
    var oursCPUMicrosPerOperation: Double
    /// Plain PostgresNIO running the same statements: what the driver allows on this machine.
    var driverCeiling: LatencyStats?
    var driverCeilingCPUMicrosPerOperation: Double?
    var pgbench: LatencyStats?

    /// Ours / pgbench, in operations per second.
    var ratio: Double? { pgbench.map { ours.opsPerSecond / max($0.opsPerSecond, 1) } }
    /// Ours / the driver ceiling, in operations per second.
    var ratioToDriverCeiling: Double? { driverCeiling.map { ours.opsPerSecond / max($0.opsPerSecond, 1) } }
    /// The driver ceiling / pgbench: the most any client on this driver reaches against pgbench
    /// on this machine, the bound of ``ratio``.
    var driverCeilingRatio: Double? {
        guard let driverCeiling, let pgbench else { return nil }
        return driverCeiling.opsPerSecond / max(pgbench.opsPerSecond, 1)
    }

    private enum CodingKeys: String, CodingKey {
        case ours, oursCPUMicrosPerOperation, driverCeiling, driverCeilingCPUMicrosPerOperation, pgbench, ratio, ratioToDriverCeiling, driverCeilingRatio
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(ours, forKey: .ours)
        try container.encode(oursCPUMicrosPerOperation, forKey: .oursCPUMicrosPerOperation)
        try container.encodeIfPresent(driverCeiling, forKey: .driverCeiling)
        try container.encodeIfPresent(driverCeilingCPUMicrosPerOperation, forKey: .driverCeilingCPUMicrosPerOperation)
        try container.encodeIfPresent(pgbench, forKey: .pgbench)
        try container.encodeIfPresent(ratio, forKey: .ratio)
        try container.encodeIfPresent(ratioToDriverCeiling, forKey: .ratioToDriverCeiling)
        try container.encodeIfPresent(driverCeilingRatio, forKey: .driverCeilingRatio)
    }

    /// Prints the comparison, a line per side and ratio after `indent`, the sides' labels
    /// padded to `labelWidth`; `oursSuffix` ends our side's line.
    func printLines(indent: String, labelWidth: Int, oursSuffix: String = "") {
        func label(_ side: String) -> String {
            indent + side + ":" + String(repeating: " ", count: max(1, labelWidth - side.count - 1))
        }
        func cpu(_ micros: Double) -> String { "client CPU \(String(format: "%.1f", micros)) µs/op" }
        print("\(label("ours"))\(ours.summary); \(cpu(oursCPUMicrosPerOperation))\(oursSuffix)")
        if let driverCeiling, let driverCeilingCPUMicrosPerOperation {
            print("\(label("driver ceiling"))\(driverCeiling.summary); \(cpu(driverCeilingCPUMicrosPerOperation))")
        }
        if let pgbench { print("\(label("pgbench"))\(pgbench.summary)") }
        if let ratio { print("\(indent)ratio ours/pgbench: \(String(format: "%.2f", ratio))×") }
        if let ratioToDriverCeiling { print("\(indent)ratio ours/driver ceiling: \(String(format: "%.2f", ratioToDriverCeiling))×") }
        if let driverCeilingRatio { print("\(indent)ratio driver ceiling/pgbench: \(String(format: "%.2f", driverCeilingRatio))× (the bound of ours/pgbench on this driver)") }
    }
}

/// A scenario's own fields (`head`) and its ``BenchComparison``, encoded as one JSON object.
struct BenchReport<Head: Encodable & Sendable>: Encodable, Sendable {
    var head: Head
    var comparison: BenchComparison

    func encode(to encoder: any Encoder) throws {
        try head.encode(to: encoder)
        try comparison.encode(to: encoder)
    }
}
