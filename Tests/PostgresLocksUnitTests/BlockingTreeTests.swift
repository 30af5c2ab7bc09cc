import PostgresLocks
import Testing

@Suite("Blocking tree")
struct BlockingTreeTests {
    @Test func rootsAreBlockersThatWaitForNoOne() {
        let trees = BlockingTree.build(blockedBy: [1: [], 2: [1], 3: [2], 4: [1], 5: []])
        #expect(trees.map(\.pid) == [1])
        #expect(trees[0].waiters.map(\.pid) == [2, 4])
        #expect(trees[0].waiters[0].waiters.map(\.pid) == [3])
        #expect(trees[0].waiterCount == 3)
    }

    @Test func aWaiterOfTwoBlockersShowsUnderBothAndACycleStillShows() {
        let shared = BlockingTree.build(blockedBy: [3: [1, 2]])
        #expect(shared.map(\.pid) == [1, 2])
        #expect(shared.allSatisfy { $0.waiters.map(\.pid) == [3] })
        let cycle = BlockingTree.build(blockedBy: [1: [2], 2: [1]])
        #expect(cycle.map(\.pid) == [1])
        #expect(cycle[0].waiters.map(\.pid) == [2])
        #expect(BlockingTree.build(blockedBy: [1: [], 2: []]).isEmpty)
    }
}
