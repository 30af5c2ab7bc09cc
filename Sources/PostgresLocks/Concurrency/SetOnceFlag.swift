import Synchronization

/// A flag that starts clear and, once set, stays set; shared between tasks (a stop request, a
/// job's completion, a soak's end).
package final class SetOnceFlag: Sendable {
    private let value = Mutex(false)

    /// A clear flag.
    package init() {}

    /// Sets the flag; setting it again does nothing.
    package func set() { value.withLock { $0 = true } }

    /// Whether the flag has been set.
    package var isSet: Bool { value.withLock { $0 } }
}
