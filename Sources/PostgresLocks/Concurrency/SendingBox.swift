/// Carries a non-`Sendable` value out of a `sending` closure.
package final class SendingBox<Value>: @unchecked Sendable {
    package let value: Value
    package init(_ value: Value) { self.value = value }
}
