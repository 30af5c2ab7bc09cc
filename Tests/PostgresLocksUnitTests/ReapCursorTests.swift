import Foundation
@testable import PostgresQueue
import Testing

@Suite("Queue worker: which expired leases a reaper pass looks at (reap cursor)")
struct ReapCursorTests {
    let start = ContinuousClock.now
    let server = Date(timeIntervalSince1970: 1_700_000_000)

    func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

    @Test func theFirstPassIsFullAndLaterOnesStartWhereTheLastEndedLessTheMargin() {
        var cursor = ReapCursor(minimumInterval: .seconds(60), costFactor: 20, margin: .seconds(1))
        #expect(cursor.nextPass(now: at(0)) == .full)
        #expect(ReapCursor.Pass.full.floor == .distantPast)
        cursor.record(.full, reaped: 3, limit: 1000, serverNow: server, started: at(0), finished: at(10))
        #expect(cursor.nextPass(now: at(5_000)) == .since(server - 1))
        cursor.record(.since(server - 1), reaped: 0, limit: 1000, serverNow: server + 5, started: at(5_000), finished: at(5_002))
        #expect(cursor.nextPass(now: at(10_000)) == .since(server + 4))
    }

    @Test func aPassThatReapedItsWholeLimitLeavesTheFloorWhereItWas() {
        var cursor = ReapCursor(minimumInterval: .seconds(60), margin: .seconds(1))
        // A full pass cut short by its limit: nothing is known to be done, so the next is full again.
        cursor.record(.full, reaped: 1000, limit: 1000, serverNow: server, started: at(0), finished: at(10))
        #expect(cursor.nextPass(now: at(100)) == .full)
        cursor.record(.full, reaped: 10, limit: 1000, serverNow: server + 1, started: at(100), finished: at(110))
        #expect(cursor.nextPass(now: at(200)) == .since(server))
        cursor.record(.since(server), reaped: 1000, limit: 1000, serverNow: server + 2, started: at(200), finished: at(210))
        #expect(cursor.nextPass(now: at(300)) == .since(server), "more may wait after where the cut-short pass stopped")
    }

    @Test func fullPassesComeEveryMinimumIntervalOrTwentyTimesTheirOwnDuration() {
        var cursor = ReapCursor(minimumInterval: .seconds(60), costFactor: 20, margin: .zero)
        cursor.record(.full, reaped: 0, limit: 1000, serverNow: server, started: at(0), finished: at(50))
        #expect(cursor.fullPassInterval == .seconds(60), "a cheap full pass: the minimum interval")
        #expect(cursor.nextPass(now: at(59_999)) == .since(server))
        #expect(cursor.nextPass(now: at(60_000)) == .full)
        // A slow full pass (an old snapshot keeps every dead entry in the index): twenty times as far apart.
        cursor.record(.full, reaped: 0, limit: 1000, serverNow: server + 60, started: at(60_000), finished: at(65_000))
        #expect(cursor.fullPassInterval == .seconds(100))
        #expect(cursor.nextPass(now: at(159_999)) == .since(server + 60))
        #expect(cursor.nextPass(now: at(160_000)) == .full)
    }
}
