import Synchronization

/// Process-wide state kept beside objects the library does not own (a client, a connection),
/// found by the object's identity.
///
/// Entries are keyed by the object's address and checked against a weak reference: an object
/// can be freed and a new one made at the same address before the old one's entry is removed,
/// and the new object must never inherit the old one's state.
final class ObjectRegistry<Object: AnyObject, State: AnyObject & Sendable>: Sendable {
    private struct Entry: @unchecked Sendable {
        weak var object: Object?
        var state: State
    }

    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])
    /// Past this many entries, entries of freed objects are dropped when one is added.
    private let sweepAbove: Int

    init(sweepAbove: Int = .max) { self.sweepAbove = sweepAbove }

    /// The state of `object`, and whether it was made (by `make`) by this call.
    func state(of object: Object, make: () -> State) -> (state: State, isNew: Bool) {
        let id = ObjectIdentifier(object)
        return entries.withLock { entries in
            if let entry = entries[id], entry.object === object { return (entry.state, false) }
            if entries.count >= sweepAbove { entries = entries.filter { $0.value.object != nil } }
            let state = make()
            entries[id] = Entry(object: object, state: state)
            return (state, true)
        }
    }

    /// Drops `state`'s entry for `object`, unless another state has taken its place.
    func remove(_ state: State, of object: ObjectIdentifier) {
        entries.withLock { entries in
            if entries[object]?.state === state { entries.removeValue(forKey: object) }
        }
    }
}
