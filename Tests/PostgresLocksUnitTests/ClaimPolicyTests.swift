@testable import PostgresQueue
import Testing

@Suite("Queue worker: when to claim and how many")
struct ClaimPolicyTests {
    @Test func anIdleWorkerClaimsAFullBatchOrAllItsRoom() {
        #expect(ClaimPolicy(concurrency: 500, batchSize: 100).jobsToClaim(running: 0) == 100)
        #expect(ClaimPolicy(concurrency: 4, batchSize: 100).jobsToClaim(running: 0) == 4)
    }

    @Test func aBusyWorkerWaitsUntilHalfABatchOfSlotsIsFree() {
        let policy = ClaimPolicy(concurrency: 100, batchSize: 40)
        #expect(policy.refillThreshold == 20)
        #expect(policy.jobsToClaim(running: 81) == nil, "19 free slots: not worth a claim")
        #expect(policy.jobsToClaim(running: 80) == 20)
        #expect(policy.jobsToClaim(running: 30) == 40, "never more than a batch")
        #expect(policy.jobsToClaim(running: 100) == nil, "no room")
    }

    @Test func aWorkerOfOneClaimsAsSoonAsItsSlotIsFree() {
        let policy = ClaimPolicy(concurrency: 1, batchSize: 10)
        #expect(policy.refillThreshold == 1)
        #expect(policy.jobsToClaim(running: 0) == 1)
        #expect(policy.jobsToClaim(running: 1) == nil)
    }

    @Test func aFullClaimIsFollowedAtOnceAndAShortOneWaits() {
        let policy = ClaimPolicy(concurrency: 10, batchSize: 5)
        #expect(policy.claimsAgain(asked: 5, claimed: 5))
        #expect(!policy.claimsAgain(asked: 5, claimed: 4))
        #expect(!policy.claimsAgain(asked: 5, claimed: 0))
    }
}
