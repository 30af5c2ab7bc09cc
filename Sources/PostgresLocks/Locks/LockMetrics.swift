import Logging
import Metrics

/// The lock metrics (swift-metrics) and log lines, in one place.
///
/// - `pglocks_lock_wait_seconds` (timer; `scope`, `mode`): time from asking to being granted
///   or giving up, for calls that had to wait;
/// - `pglocks_lock_acquisitions_total` (counter; `scope`): locks granted;
/// - `pglocks_lock_contended_total` (counter; `scope`): acquisitions that found the lock taken
///   and had to wait (or gave up);
/// - `pglocks_lock_timeouts_total` (counter; `scope`): waits that ended without the lock
///   (try-locks refused, timeouts);
/// - `pglocks_lock_lost_total` (counter): session locks lost with their connection.
///
/// Metric objects are made per event, so a metrics backend bootstrapped late still sees them.
enum LockMetrics {
    enum Outcome {
        case acquired(contended: Bool)
        case notAcquired
    }

    static func record(
        _ outcome: Outcome,
        scope: LockScope,
        mode: LockMode,
        keys: Int,
        waited: Duration?,
        logger: Logger,
        key: @autoclosure () -> String
    ) {
        let scopeDimension = [("scope", scope.rawValue)]
        if let waited {
            Timer(label: "pglocks_lock_wait_seconds", dimensions: [("scope", scope.rawValue), ("mode", mode == .shared ? "shared" : "exclusive")])
                .recordNanoseconds(nanoseconds(waited))
        }
        switch outcome {
        case .acquired(let contended):
            Counter(label: "pglocks_lock_acquisitions_total", dimensions: scopeDimension).increment(by: Int64(keys))
            if contended { Counter(label: "pglocks_lock_contended_total", dimensions: scopeDimension).increment() }
            logger.debug("advisory lock acquired", metadata: [
                "key": "\(key())", "scope": "\(scope.rawValue)", "mode": "\(mode)", "waited_ms": "\(waited.map(milliseconds) ?? 0)",
            ])
        case .notAcquired:
            Counter(label: "pglocks_lock_contended_total", dimensions: scopeDimension).increment()
            Counter(label: "pglocks_lock_timeouts_total", dimensions: scopeDimension).increment()
            logger.info("advisory lock not acquired", metadata: [
                "key": "\(key())", "scope": "\(scope.rawValue)", "mode": "\(mode)", "waited_ms": "\(waited.map(milliseconds) ?? 0)",
            ])
        }
    }

    static func lost(logger: Logger) {
        Counter(label: "pglocks_lock_lost_total").increment()
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    static func milliseconds(_ duration: Duration) -> Double {
        Double(nanoseconds(duration)) / 1e6
    }
}
