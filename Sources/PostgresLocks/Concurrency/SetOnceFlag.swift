import Synchronization

/// A flag that starts clear and, once set, stays set; shared between tasks (a stop request, a
/// job's completion, a soak's end).
package final class SetOnceFlag: Sendable {
    private let value = Mutex(false)

    /// A clear flag.
    package init() {}

    /// Sets the flag; setting it again does nothing.
    package func set() { value.withLock { $0 = true } }

    /// Sets the flag; true only for the call that set it first.
    package func setIfClear() -> Bool {
        value.withLock { isSet in
            defer { isSet = true }
            return !isSet
        }
    }

    /// Whether the flag has been set.
    package var isSet: Bool { value.withLock { $0 } }
}
