import Metrics
import MetricsTestKit
import PostgresLocks
import PostgresLocksTestSupport
import PostgresNIO
import Testing

/// One test metrics backend for the process (swift-metrics can be bootstrapped once).
private let testMetrics: TestMetrics = {
    let metrics = TestMetrics()
    MetricsSystem.bootstrap(metrics)
    return metrics
}()

@Suite("Lock metrics")
struct LockMetricsTests {
    @Test func aContendedWaitAndATimeoutAreRecorded() async throws {
        let metrics = testMetrics
        try await TestDatabase.withDatabase(maximumConnections: 6) { db in
            func waits() -> Int { metrics.timers(label: "pglocks_lock_wait_seconds").reduce(0) { $0 + $1.values.count } }
            func total(_ label: String) -> Int64 { metrics.counterTotal(label: label) }
            let (waitsBefore, timeoutsBefore, contendedBefore) = (waits(), total("pglocks_lock_timeouts_total"), total("pglocks_lock_contended_total"))
            let key = LockKey.hashed("metrics-test-\(Int.random(in: 0...Int.max))")
            try await db.withConnections(1) { connections in
                let holder = connections[0]
                _ = try await holder.query("SELECT pg_advisory_lock(\(key.int64Value!))", logger: db.logger).collect()
                await #expect(throws: PostgresLocksError.self) {
                    try await db.client.withAdvisoryLock(key, wait: .timeout(.milliseconds(50)), logger: db.logger) { _ in }
                }
            }
            #expect(total("pglocks_lock_timeouts_total") >= timeoutsBefore + 1)
            #expect(total("pglocks_lock_contended_total") >= contendedBefore + 1)
            #expect(waits() >= waitsBefore + 1)
            let recorded = metrics.timers(label: "pglocks_lock_wait_seconds").flatMap(\.values)
            #expect(recorded.contains { $0 >= 50_000_000 }, "a wait of at least the 50 ms timeout")
            let acquiredBefore = total("pglocks_lock_acquisitions_total")
            try await db.client.withAdvisoryLock(key, logger: db.logger) { _ in }
            #expect(total("pglocks_lock_acquisitions_total") >= acquiredBefore + 1)
        }
    }
}
