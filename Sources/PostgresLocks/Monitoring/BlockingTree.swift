/// Who blocks whom, as trees: each root is a process that blocks others but waits for no one
/// (the root blocker to look at first), and its children are the processes waiting for it.
public enum BlockingTree {
    /// A process and those waiting for it.
    public struct Node: Sendable, Hashable, Codable {
        /// The server process id.
        public var pid: Int32
        /// The processes waiting for this one.
        public var waiters: [Node]

        /// How many processes wait behind this one, directly or not.
        public var waiterCount: Int { waiters.reduce(waiters.count) { $0 + $1.waiterCount } }
    }

    /// Builds the trees from each process's blockers (`pg_blocking_pids`). A process waiting
    /// for several appears under each; processes in a cycle (a deadlock not yet detected) whose
    /// members all wait are shown from their lowest pid. Pure: no I/O.
    public static func build(blockedBy: [Int32: [Int32]]) -> [Node] {
        var waitersOf: [Int32: [Int32]] = [:]
        var everyone = Set(blockedBy.keys)
        for (waiter, blockers) in blockedBy {
            for blocker in blockers {
                waitersOf[blocker, default: []].append(waiter)
                everyone.insert(blocker)
            }
        }
        let waiting = Set(blockedBy.filter { !$0.value.isEmpty }.keys)
        var roots = everyone.filter { !waiting.contains($0) && !(waitersOf[$0] ?? []).isEmpty }.sorted()
        // A cycle has no root: start from its lowest pid not reached yet.
        var reached = Set<Int32>()
        func node(_ pid: Int32, path: Set<Int32>) -> Node {
            reached.insert(pid)
            let children = (waitersOf[pid] ?? []).sorted().filter { !path.contains($0) }
            return Node(pid: pid, waiters: children.map { node($0, path: path.union([$0])) })
        }
        var trees = roots.map { node($0, path: [$0]) }
        for pid in waiting.sorted() where !reached.contains(pid) {
            roots.append(pid)
            trees.append(node(pid, path: [pid]))
        }
        return trees
    }
}
