import Foundation
import PostgresLocks

/// The values one field of a ``CronExpression`` allows, as a bit set over 0...63.
struct CronValueSet: Sendable, Hashable {
    /// Bit `n` is set when value `n` is allowed.
    var bits: UInt64 = 0

    /// Every value in `range`.
    static func all(_ range: ClosedRange<Int>) -> CronValueSet {
        var set = CronValueSet()
        for value in range { set.insert(value) }
        return set
    }

    /// Allows `value` (0...63).
    mutating func insert(_ value: Int) { bits |= 1 << UInt64(value) }

    /// Whether `value` is allowed.
    func contains(_ value: Int) -> Bool {
        value >= 0 && value < 64 && bits & (1 << UInt64(value)) != 0
    }

    /// The smallest allowed value that is at least `value`, if any.
    func next(atOrAfter value: Int) -> Int? {
        guard value < 64 else { return nil }
        let masked = value <= 0 ? bits : bits & (UInt64.max << UInt64(value))
        return masked == 0 ? nil : masked.trailingZeroBitCount
    }

    /// The largest allowed value that is at most `value`, if any.
    func previous(atOrBefore value: Int) -> Int? {
        guard value >= 0 else { return nil }
        let masked = value >= 63 ? bits : bits & ((1 << UInt64(value + 1)) - 1)
        return masked == 0 ? nil : 63 - masked.leadingZeroBitCount
    }
}
