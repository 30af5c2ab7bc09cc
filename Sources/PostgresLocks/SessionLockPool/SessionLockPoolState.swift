/// Where a ``SessionLockPool``'s holds live, and where the next one goes: the pool's logic
/// without I/O (its shell runs the statements and keeps the connections).
///
/// The server excludes sessions from each other, but not a session from itself: a session that
/// takes a lock it already holds gets it again. So two holds of one key must never share a
/// session (unless both are shared): placement skips the sessions where the key is in use,
/// held or being taken or released, and a try that finds no such session is treated as
/// contended. Waits that block go to *waiting sessions* of their own, at most
/// `waitingSessions` of them, each carrying the one hold it waited for until it is released.
struct SessionLockPoolState: Sendable {
    /// A hold's number, unique in the pool's life.
    typealias HoldID = UInt64

    /// One server session of the pool.
    struct Session: Sendable {
        /// Whether its connection is up (and its holds alive).
        var isLive = false
        /// Bumped each time the session reconnects: a hold confirmed against an older one died
        /// with it.
        var generation = 0
        /// A waiting session (opened for one blocking wait) rather than a carrying one.
        let isWaiting: Bool
        /// A blocking wait is in flight on it: nothing else may be sent.
        var busy = false
        /// Its holds, and the keys in use on it (held, being taken or being released) with how
        /// many of each and whether any is exclusive.
        var holds: Set<HoldID> = []
        var keys: [LockKey: KeyUse] = [:]
    }

    /// How a key is used on one session.
    struct KeyUse: Sendable, Equatable {
        var count: Int
        var exclusive: Bool
    }

    /// A hold: taken, or being taken.
    struct Hold: Sendable {
        let key: LockKey
        let mode: LockMode
        /// The session carrying it, in the generation (connection) it was taken on.
        let session, generation: Int
        var granted = false
    }

    private(set) var sessions: [Int: Session] = [:]
    private(set) var holds: [HoldID: Hold] = [:]
    private var nextHold: HoldID = 1
    let carryingSessions: Int
    let waitingSessions: Int

    init(carryingSessions: Int, waitingSessions: Int) {
        self.carryingSessions = carryingSessions
        self.waitingSessions = waitingSessions
        for id in 0..<carryingSessions { sessions[id] = Session(isWaiting: false) }
    }

    /// The number of holds granted.
    var heldCount: Int { holds.values.count { $0.granted } }

    /// The carrying sessions connected now.
    var liveCarryingSessions: Int { sessions.values.count { !$0.isWaiting && $0.isLive } }

    // MARK: Sessions coming and going

    /// A session's connection is up.
    mutating func sessionCameUp(_ id: Int) {
        sessions[id]?.isLive = true
        sessions[id]?.generation += 1
    }

    /// A session's connection is gone: its holds are lost. Returns them; a waiting session is
    /// removed (its slot can be opened again).
    mutating func sessionWentDown(_ id: Int) -> [HoldID] {
        guard let session = sessions[id] else { return [] }
        let lost = Array(session.holds)
        for hold in lost { holds[hold] = nil }
        if session.isWaiting {
            sessions[id] = nil
        } else {
            sessions[id] = Session(isLive: false, generation: session.generation, isWaiting: false)
        }
        return lost
    }

    // MARK: Taking

    /// Places a try of `key` on the live carrying session with the fewest holds where the key
    /// is not in conflicting use, and marks it in use there. Nil when there is none.
    mutating func placeTry(_ key: LockKey, mode: LockMode) -> (hold: HoldID, session: Int, generation: Int)? {
        let candidates = sessions.filter { id, session in
            !session.isWaiting && session.isLive && !session.busy && !Self.conflicts(session.keys[key], mode)
        }
        guard let (id, session) = candidates.min(by: { ($0.value.holds.count, $0.key) < ($1.value.holds.count, $1.key) }) else {
            return nil
        }
        return (begin(key, mode: mode, on: id), id, session.generation)
    }

    /// A waiting session for a blocking wait: an idle live one, or a new one to open (`opens`)
    /// when fewer than `waitingSessions` exist. Nil when all are busy or carrying a hold.
    mutating func reserveWaitingSession() -> (session: Int, opens: Bool)? {
        if let (id, _) = sessions.first(where: { $0.value.isWaiting && $0.value.isLive && !$0.value.busy && $0.value.holds.isEmpty }) {
            sessions[id]?.busy = true
            return (id, false)
        }
        guard sessions.values.count(where: \.isWaiting) < waitingSessions else { return nil }
        let id = (sessions.keys.max() ?? -1) + 1
        sessions[id] = Session(isWaiting: true, busy: true)
        return (id, true)
    }

    /// Starts a blocking wait for `key` on the reserved waiting session `id`.
    mutating func placeWait(_ key: LockKey, mode: LockMode, on id: Int) -> (hold: HoldID, generation: Int)? {
        guard let session = sessions[id], session.isLive else { return nil }
        return (begin(key, mode: mode, on: id), session.generation)
    }

    private mutating func begin(_ key: LockKey, mode: LockMode, on id: Int) -> HoldID {
        let hold = nextHold
        nextHold += 1
        holds[hold] = Hold(key: key, mode: mode, session: id, generation: sessions[id]!.generation)
        sessions[id]!.holds.insert(hold)
        var use = sessions[id]!.keys[key] ?? KeyUse(count: 0, exclusive: false)
        use.count += 1
        use.exclusive = use.exclusive || mode == .exclusive
        sessions[id]!.keys[key] = use
        return hold
    }

    /// The server granted `hold`: true if its session is still the one it was placed on (the
    /// same connection), so the hold is real; false if the session went down meanwhile.
    mutating func granted(_ hold: HoldID) -> Bool {
        guard let entry = holds[hold], let session = sessions[entry.session],
              session.isLive, session.generation == entry.generation else { return false }
        holds[hold]?.granted = true
        return true
    }

    /// Ends `hold` (refused, failed, or released after its unlock): the key is free on its
    /// session again. Returns the session it was on, if the hold still existed.
    @discardableResult
    mutating func end(_ hold: HoldID) -> Int? {
        guard let entry = holds.removeValue(forKey: hold) else { return nil }
        guard var session = sessions[entry.session] else { return nil }
        session.holds.remove(hold)
        if var use = session.keys[entry.key] {
            use.count -= 1
            if use.count == 0 {
                session.keys[entry.key] = nil
            } else {
                // Still exclusive if another exclusive hold of the key remains.
                use.exclusive = session.holds.contains { holds[$0]?.key == entry.key && holds[$0]?.mode == .exclusive }
                session.keys[entry.key] = use
            }
        }
        sessions[entry.session] = session
        return entry.session
    }

    /// Forgets a waiting session that was reserved to be opened and never was (its taker gave
    /// up first): its slot can be opened again.
    mutating func forgetUnopenedWaitingSession(_ id: Int) {
        guard let session = sessions[id], session.isWaiting, !session.isLive, session.holds.isEmpty else { return }
        sessions[id] = nil
    }

    /// A blocking wait on waiting session `id` is over (granted or not): it may be sent
    /// statements again.
    mutating func waitEnded(on id: Int) {
        sessions[id]?.busy = false
    }

    /// Whether a use of a key on a session conflicts with taking it in `mode` there.
    static func conflicts(_ use: KeyUse?, _ mode: LockMode) -> Bool {
        guard let use else { return false }
        return use.exclusive || mode == .exclusive
    }

    /// Where `hold` is, if it exists.
    func hold(_ hold: HoldID) -> Hold? { holds[hold] }
}
