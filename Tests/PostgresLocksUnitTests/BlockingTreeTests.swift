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

    @Test func aQueueOnOneKeyShowsEachWaiterOnceWithEveryoneItWaitsBehind() {
        // One holder (1), two waiters queued on its key: the second waits behind both.
        let trees = BlockingTree.build(blockedBy: [1: [], 2: [1], 3: [1, 2]])
        #expect(trees.map(\.pid) == [1])
        #expect(trees[0].waiters.map(\.pid) == [2, 3])
        #expect(trees[0].waiters.allSatisfy { $0.waiters.isEmpty })
        #expect(trees[0].waiters[1].blockedBy == [1, 2])
        #expect(trees[0].waiterCount == 2)
    }

    @Test func aWaiterOfTwoRootsAppearsOnceAndACycleStillShows() {
        let shared = BlockingTree.build(blockedBy: [3: [1, 2]])
        #expect(shared.map(\.pid) == [1, 2])
        #expect(shared[0].waiters.map(\.pid) == [3])
        #expect(shared[1].waiters.isEmpty)
        #expect(shared[0].waiters[0].blockedBy == [1, 2])
        let cycle = BlockingTree.build(blockedBy: [1: [2], 2: [1]])
        #expect(cycle.map(\.pid) == [1])
        #expect(cycle[0].waiters.map(\.pid) == [2])
        #expect(BlockingTree.build(blockedBy: [1: [], 2: []]).isEmpty)
    }
}
