import Foundation

/// What `pglock bench lock`, `lock-session` and `many-keys` report beside their comparison.
struct LockBenchRun: Encodable, Sendable {
    var scenario: String
    var concurrency: Int
    /// `lock` only: how our side drives the lock loop (``LockVariant``), and where the workers
    /// run (``BenchCommand/ExecutorChoice``).
    var variant, executor: String?
    var peakMemoryMegabytes: Double
    /// The pool of `ours`, when it goes through one.
    var pool: String?
    /// `lock-session` only: the same locks taken through a ``SessionLockPool`` (sessions kept
    /// open, no lease per lock).
    var sessionLockPool: LatencyStats?
    /// `lock-session` only: the session lock pool's client CPU per lock.
    var sessionLockPoolCPUMicrosPerOperation: Double?
    /// `lock-session` only: the session lock pool's rate / pgbench's.
    var sessionLockPoolRatio: Double?
}

extension BenchReport<LockBenchRun> {
    /// Prints the report as text: `lock` with its variant and the peak memory on a line of its
    /// own, the other lock scenarios with the peak memory on our side's line.
    func printText() {
        let variant = head.variant.map { ", variant \($0)" } ?? "", executor = head.executor.map { ", executor \($0)" } ?? ""
        print("scenario \(head.scenario), concurrency \(head.concurrency)\(variant)\(executor)\(head.pool.map { ", \($0)" } ?? "")")
        let peakMemory = String(format: "%.0f", head.peakMemoryMegabytes)
        if head.variant == nil {
            comparison.printLines(indent: "  ", labelWidth: 9, oursSuffix: "; peak memory \(peakMemory) MiB")
            if let pooled = head.sessionLockPool, let cpu = head.sessionLockPoolCPUMicrosPerOperation {
                print("  session lock pool: \(pooled.summary); client CPU \(String(format: "%.1f", cpu)) µs/op")
                if let ratio = head.sessionLockPoolRatio { print("  ratio session lock pool/pgbench: \(String(format: "%.2f", ratio))×") }
            }
        } else {
            comparison.printLines(indent: "  ", labelWidth: 16)
            print("  peak memory: \(peakMemory) MiB")
        }
    }
}
