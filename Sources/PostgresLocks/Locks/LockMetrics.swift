import Logging
import Metrics
import Tracing

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
/// Each outcome is also a `pglocks.lock` span (see ``LibrarySpan``) covering the wait, recorded
/// when it ends; a wait that ended in an error (a deadlock, a cancelled task) is one too
/// (``failed(_:scope:mode:keys:waited:key:)``), though no metric counts it.
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
        span(outcome: outcome, scope: scope, mode: mode, keys: keys, waited: waited, error: nil, key: key())
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

    /// A wait that ended in an error other than not getting the lock: only its span.
    static func failed(_ error: any Error, scope: LockScope, mode: LockMode, keys: Int, waited: Duration, key: @autoclosure () -> String) {
        span(outcome: nil, scope: scope, mode: mode, keys: keys, waited: waited, error: error, key: key())
    }

    /// The `pglocks.lock` span of one acquisition (`outcome` nil: it failed with `error`).
    private static func span(
        outcome: Outcome?, scope: LockScope, mode: LockMode, keys: Int, waited: Duration?, error: (any Error)?,
        key: @autoclosure () -> String
    ) {
        LibrarySpan.recordFinished("pglocks.lock", lasted: waited ?? .zero, error: error) { attributes in
            attributes["pglocks.lock.key"] = key()
            attributes["pglocks.lock.mode"] = mode == .shared ? "shared" : "exclusive"
            attributes["pglocks.lock.scope"] = scope.rawValue
            attributes["pglocks.lock.keys"] = keys
            attributes["pglocks.lock.waited_ms"] = waited.map(milliseconds) ?? 0
            attributes["pglocks.lock.outcome"] = switch outcome {
            case .acquired(contended: false)?: "acquired"
            case .acquired(contended: true)?: "acquired after waiting"
            case .notAcquired?: "not acquired"
            case nil: (error as? PostgresLocksError)?.code.name ?? (error is CancellationError ? "cancelled" : "failed")
            }
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
