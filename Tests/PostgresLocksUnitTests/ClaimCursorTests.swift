import Foundation
@testable import PostgresQueue
import Testing

@Suite("Queue worker: where a claim starts (claim cursor)")
struct ClaimCursorTests {
    let start = ContinuousClock.now
    let date = Date(timeIntervalSince1970: 1_700_000_000)

    func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }
    func job(_ id: Int64, priority: Int16 = 0, second: Double = 0) -> ClaimCursor.Position {
        ClaimCursor.Position(priority: priority, runAt: date + second, id: id)
    }

    @Test func positionsCompareInClaimOrder() {
        #expect(job(9, priority: -1) < job(1), "priority first")
        #expect(job(9, second: 0) < job(1, second: 1), "then the run time")
        #expect(job(1, second: 1) < job(2, second: 1), "then the id")
    }

    @Test func theFirstClaimIsFullAndLaterOnesStartAfterTheLastJobClaimed() {
        var cursor = ClaimCursor(minimumInterval: .seconds(1), costFactor: 10)
        #expect(cursor.nextClaim(now: at(0)) == .full)
        // The claim's rows come back in no particular order: the cursor takes the last in claim order.
        let looksBehind1 = cursor.record(.full, asked: 3, claimed: [job(2), job(3), job(1)], started: at(0), finished: at(5))
        #expect(!looksBehind1)
        #expect(cursor.position == job(3))
        #expect(cursor.nextClaim(now: at(10)) == .after(job(3)))
        let looksBehind2 = cursor.record(.after(job(3)), asked: 3, claimed: [job(5), job(4), job(6)], started: at(10), finished: at(12))
        #expect(!looksBehind2)
        #expect(cursor.nextClaim(now: at(20)) == .after(job(6)))
    }

    @Test func aFullScanComesOnceTheIntervalHasPassedWhileBusy() {
        var cursor = ClaimCursor(minimumInterval: .seconds(1), costFactor: 10)
        _ = cursor.record(.full, asked: 2, claimed: [job(1), job(2)], started: at(0), finished: at(5))
        #expect(cursor.fullScanInterval == .seconds(1), "a cheap full scan: the minimum interval")
        #expect(cursor.nextClaim(now: at(999)) == .after(job(2)))
        #expect(cursor.nextClaim(now: at(1000)) == .full)
    }

    @Test func theIntervalGrowsWithTheCostOfAFullScan() {
        var cursor = ClaimCursor(minimumInterval: .seconds(1), costFactor: 10)
        // A full scan of 300 ms (a long-held snapshot left a dead front): full scans come 3 s apart.
        _ = cursor.record(.full, asked: 2, claimed: [job(1), job(2)], started: at(0), finished: at(300))
        #expect(cursor.fullScanInterval == .seconds(3))
        #expect(cursor.nextClaim(now: at(2999)) == .after(job(2)))
        #expect(cursor.nextClaim(now: at(3000)) == .full)
        // Cheap again (the snapshot ended): back to the minimum.
        _ = cursor.record(.full, asked: 2, claimed: [job(3), job(4)], started: at(3000), finished: at(3002))
        #expect(cursor.fullScanInterval == .seconds(1))
    }

    @Test func aShortBoundedClaimLooksBehindTheCursorAtOnceOnlyWhenAFullScanIsDue() {
        var cursor = ClaimCursor(minimumInterval: .seconds(1), costFactor: 10)
        _ = cursor.record(.full, asked: 2, claimed: [job(1), job(2)], started: at(0), finished: at(5))
        let looksBehind3 = cursor.record(.after(job(2)), asked: 2, claimed: [job(3)], started: at(100), finished: at(101))
        #expect(!looksBehind3, "short, but the last full scan is recent: wait for a wake-up")
        #expect(cursor.nextClaim(now: at(200)) == .after(job(3)))
        let looksBehind4 = cursor.record(.after(job(3)), asked: 2, claimed: [job(4), job(5)], started: at(1100), finished: at(1101))
        #expect(!looksBehind4, "a full batch: the claim loop goes on anyway (and its next claim is a full scan)")
        #expect(cursor.nextClaim(now: at(1102)) == .full)
        let looksBehind5 = cursor.record(.after(job(5)), asked: 2, claimed: [], started: at(1102), finished: at(1103))
        #expect(looksBehind5, "empty and a full scan is due: claim again at once")
        #expect(cursor.nextClaim(now: at(1103)) == .full)
        #expect(cursor.position == job(5), "an empty claim leaves the cursor where it was")
    }

    @Test func aFullScanThatFindsJobsBeforeTheCursorMovesItBack() {
        var cursor = ClaimCursor(minimumInterval: .seconds(1), costFactor: 10)
        _ = cursor.record(.full, asked: 2, claimed: [job(1), job(2)], started: at(0), finished: at(5))
        _ = cursor.record(.after(job(2)), asked: 2, claimed: [job(3), job(4)], started: at(10), finished: at(15))
        // A higher-priority job enqueued later fills the next full scan: the rest of its kind
        // may wait before job 4, so the cursor starts from it.
        _ = cursor.record(.full, asked: 1, claimed: [job(90, priority: -5)], started: at(1000), finished: at(1005))
        #expect(cursor.position == job(90, priority: -5))
        #expect(cursor.nextClaim(now: at(1010)) == .after(job(90, priority: -5)))
    }
}
