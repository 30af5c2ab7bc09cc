import Foundation
import PostgresLocks

/// Parses `250ms`, `5s`, `1.5s`, `2m`, `1h` into a `Duration`; a bare number is seconds.
///
/// - Throws: `PostgresLocksError` (`invalidArgument`) naming the bad text, for negative,
///   zero, non-numeric or absurd (over 24 days) values.
package func parseDuration(_ text: String) throws -> Duration {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
    var number = Substring(text)
    var scale = 1.0
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        number = text.dropLast(suffix.count)
        scale = factor
        break
    }
    guard let value = Double(number), value.isFinite else {
        throw PostgresLocksError(code: .invalidArgument, message: "'\(text)' is not a duration: use e.g. 250ms, 5s, 2m")
    }
    let seconds = value * scale
    guard seconds > 0 else {
        throw PostgresLocksError(code: .invalidArgument, message: "duration '\(text)' must be positive")
    }
    guard seconds <= 24 * 24 * 3600 else {
        throw PostgresLocksError(code: .invalidArgument, message: "duration '\(text)' is too long (at most 24 days)")
    }
    return .milliseconds(Int64((seconds * 1000).rounded(.up)))
}

/// A duration in seconds.
package func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// "1.23 s" or "456 ms".
package func format(_ duration: Duration) -> String {
    let value = seconds(duration)
    return value >= 1 ? String(format: "%.2f s", value) : String(format: "%.0f ms", value * 1000)
}
