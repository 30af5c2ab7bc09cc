@testable import PostgresLocks
import Testing

@Suite("Session lock pool: where holds go (state, no database)")
struct SessionLockPoolStateTests {
    typealias State = SessionLockPoolState

    /// A state with `carrying` carrying sessions, all up.
    func live(_ carrying: Int, waiting: Int = 2) -> State {
        var state = State(carryingSessions: carrying, waitingSessions: waiting)
        for id in 0..<carrying { state.sessionCameUp(id) }
        return state
    }

    /// Places a try of `key` and returns where, failing the test when there is no place.
    func place(_ state: inout State, _ key: Int64, _ mode: LockMode = .exclusive, grant: Bool = false) throws -> (hold: State.HoldID, session: Int) {
        let placed = state.placeTry(.int64(key), mode: mode)
        let found = try #require(placed)
        if grant {
            let granted = state.granted(found.hold)
            #expect(granted)
        }
        return (found.hold, found.session)
    }

    @Test func holdsSpreadOverTheSessionsWithTheFewest() throws {
        var state = live(3)
        var counts = [0, 0, 0]
        for key in Int64(0)..<30 {
            counts[try place(&state, key, grant: true).session] += 1
        }
        #expect(counts == [10, 10, 10])
        #expect(state.heldCount == 30)
    }

    @Test func aKeyInUseOnASessionIsNeverTakenAgainThereUnlessBothAreShared() throws {
        var state = live(2)
        let first = try place(&state, 1)
        // Being taken (not yet granted) counts as in use: the second try goes elsewhere.
        let second = try place(&state, 1)
        #expect(second.session != first.session)
        // No third session free of the key: contended.
        let third = state.placeTry(.int64(1), mode: .shared)
        #expect(third == nil)
        state.end(first.hold)
        #expect(try place(&state, 1).session == first.session)

        var shared = live(1)
        let a = try place(&shared, 9, .shared)
        let b = try place(&shared, 9, .shared)
        #expect(a.session == b.session)
        let exclusive = shared.placeTry(.int64(9), mode: .exclusive)
        #expect(exclusive == nil)
        shared.end(a.hold)
        shared.end(b.hold)
        _ = try place(&shared, 9)
    }

    @Test func aSessionGoingDownLosesExactlyItsHoldsAndAGrantAfterwardsIsRefused() throws {
        var state = live(2)
        var bySession: [Int: Set<State.HoldID>] = [:]
        for key in Int64(0)..<10 {
            let placed = try place(&state, key, grant: true)
            bySession[placed.session, default: []].insert(placed.hold)
        }
        let pending = try place(&state, 99)
        let lost = state.sessionWentDown(pending.session)
        #expect(Set(lost) == bySession[pending.session]!.union([pending.hold]))
        #expect(state.heldCount == 10 - bySession[pending.session]!.count)
        // Granted by the server after its session went down: not a hold.
        let late = state.granted(pending.hold)
        #expect(!late)
        state.sessionCameUp(pending.session)
        #expect(state.sessions[pending.session]?.holds.isEmpty == true)
    }

    @Test func waitingSessionsAreBoundedReusedWhenIdleAndFreedWhenTheyEnd() throws {
        var state = live(1, waiting: 2)
        let first = try #require(Optional(state.reserveWaitingSession()).flatMap { $0 })
        let second = try #require(Optional(state.reserveWaitingSession()).flatMap { $0 })
        #expect(first.opens && second.opens && first.session != second.session)
        let none = state.reserveWaitingSession()
        #expect(none == nil)
        state.sessionCameUp(first.session)
        let wait = try #require(Optional(state.placeWait(.int64(5), mode: .exclusive, on: first.session)).flatMap { $0 })
        state.waitEnded(on: first.session)
        let granted = state.granted(wait.hold)
        #expect(granted)
        // Carrying the hold it waited for: not reusable, and not a place for tries.
        let busy = state.reserveWaitingSession()
        #expect(busy == nil)
        #expect(try place(&state, 6).session == 0)
        state.end(wait.hold)
        let reused = state.reserveWaitingSession()
        #expect(reused?.session == first.session && reused?.opens == false)
        // A waiting session that ends is removed: its slot can be opened again.
        _ = state.sessionWentDown(second.session)
        let reopened = state.reserveWaitingSession()
        #expect(reopened?.opens == true)
    }
}
