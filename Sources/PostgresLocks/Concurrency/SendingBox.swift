/// Carries a non-`Sendable` value out of a `sending` closure.
final class SendingBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
