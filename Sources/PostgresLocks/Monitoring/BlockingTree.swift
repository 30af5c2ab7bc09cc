/// Who blocks whom, as trees in which each session appears once: each root is a process that
/// blocks others but waits for no one (the root blocker to look at first), and its children are
/// the processes waiting for it.
///
/// Waits form a graph, not a tree: `pg_blocking_pids` names every session ahead of a waiter,
/// the holder and the waiters queued before it. Each waiter is placed once, under the blocker
/// nearest to a root (so a queue on one key shows as the holder with its waiters side by side,
/// and a chain of waits as a chain), and keeps the whole list of what it waits behind in
/// ``Node/blockedBy``.
public enum BlockingTree {
    /// A process and those waiting for it.
    public struct Node: Sendable, Hashable, Codable {
        /// The server process id.
        public var pid: Int32
        /// Every process this one waits behind (empty for a root).
        public var blockedBy: [Int32]
        /// The processes placed under this one.
        public var waiters: [Node]

        /// How many distinct processes wait behind this one, directly or not.
        public var waiterCount: Int { waiters.reduce(waiters.count) { $0 + $1.waiterCount } }

        /// A node.
        public init(pid: Int32, blockedBy: [Int32] = [], waiters: [Node] = []) {
            self.pid = pid
            self.blockedBy = blockedBy
            self.waiters = waiters
        }
    }

    /// Builds the trees from each process's blockers (`pg_blocking_pids`). Every process
    /// appears once; processes in a cycle (a deadlock not yet detected) whose members all wait
    /// are shown from their lowest pid. Pure: no I/O.
    public static func build(blockedBy: [Int32: [Int32]]) -> [Node] {
        var waitersOf: [Int32: [Int32]] = [:]
        var everyone = Set(blockedBy.keys)
        for (waiter, blockers) in blockedBy {
            for blocker in Set(blockers) where blocker != waiter {
                waitersOf[blocker, default: []].append(waiter)
                everyone.insert(blocker)
            }
        }
        let waiting = Set(blockedBy.filter { !$0.value.isEmpty }.keys)
        let roots = everyone.filter { !waiting.contains($0) && !(waitersOf[$0] ?? []).isEmpty }.sorted()
        // Breadth first from the roots: a waiter's parent is its blocker nearest to a root.
        var parent: [Int32: Int32] = [:]
        var placed = Set<Int32>()
        var order: [Int32] = []
        var starts: [Int32] = []
        func walk(from start: Int32) {
            starts.append(start)
            placed.insert(start)
            var frontier = [start]
            while !frontier.isEmpty {
                var next: [Int32] = []
                for pid in frontier {
                    order.append(pid)
                    for waiter in (waitersOf[pid] ?? []).sorted() where !placed.contains(waiter) {
                        placed.insert(waiter)
                        parent[waiter] = pid
                        next.append(waiter)
                    }
                }
                frontier = next
            }
        }
        for root in roots { walk(from: root) }
        // A cycle has no root: start from its lowest pid not placed yet.
        for pid in waiting.sorted() where !placed.contains(pid) { walk(from: pid) }

        var children: [Int32: [Int32]] = [:]
        for pid in order { if let up = parent[pid] { children[up, default: []].append(pid) } }
        func node(_ pid: Int32) -> Node {
            Node(pid: pid, blockedBy: (blockedBy[pid] ?? []).filter { $0 != pid }.sorted(), waiters: (children[pid] ?? []).sorted().map(node))
        }
        return starts.map(node)
    }
}
