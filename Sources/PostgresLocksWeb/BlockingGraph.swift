import PostgresLocks

/// The blocking trees laid out for drawing: each session a box in the column of its depth (root
/// blockers on the left), one row per session, an arrow from each waiter to its parent and a
/// dashed one to every other session it waits behind. Pure: no I/O.
struct BlockingGraph: Equatable {
    struct Box: Equatable {
        var pid: Int32
        var column, row: Int
        var isRoot: Bool
    }

    struct Edge: Equatable {
        var from, to: Int32
        /// To the parent in the tree (solid) or to another session ahead in the queue (dashed).
        var isParent: Bool
    }

    var boxes: [Box] = []
    var edges: [Edge] = []
    /// Sessions left out by the limit.
    var omitted = 0

    static let columnWidth = 210, rowHeight = 46, boxWidth = 180, boxHeight = 34

    init(trees: [BlockingTree.Node], limit: Int = 150) {
        func add(_ node: BlockingTree.Node, depth: Int, parent: Int32?) {
            guard boxes.count < limit else {
                omitted += 1 + node.waiterCount
                return
            }
            boxes.append(Box(pid: node.pid, column: depth, row: boxes.count, isRoot: depth == 0))
            for blocker in node.blockedBy {
                edges.append(Edge(from: node.pid, to: blocker, isParent: blocker == parent))
            }
            for waiter in node.waiters { add(waiter, depth: depth + 1, parent: node.pid) }
        }
        for tree in trees { add(tree, depth: 0, parent: nil) }
        let shown = Set(boxes.map(\.pid))
        edges = edges.filter { shown.contains($0.from) && shown.contains($0.to) }
    }

    var width: Int { ((boxes.map(\.column).max() ?? 0) + 1) * Self.columnWidth }
    var height: Int { max(1, boxes.count) * Self.rowHeight }

    /// The graph as inline SVG; `label` gives each session's second line (escaped here).
    func svg(label: (Int32) -> String) -> HTML {
        guard !boxes.isEmpty else { return "<p class=\"quiet\">Nobody waits for a lock.</p>" }
        let position = Dictionary(uniqueKeysWithValues: boxes.map { ($0.pid, $0) })
        var parts: [HTML] = []
        for edge in edges {
            guard let from = position[edge.from], let to = position[edge.to] else { continue }
            let y1 = from.row * Self.rowHeight + Self.boxHeight / 2 + 4, y2 = to.row * Self.rowHeight + Self.boxHeight / 2 + 4
            let path: String
            if from.column == to.column {
                // Behind a session in the same column (queued on the same key): a loop on the right.
                let x = from.column * Self.columnWidth + Self.boxWidth + 2
                path = "M\(x),\(y1) C\(x + 24),\(y1) \(x + 24),\(y2) \(x + 4),\(y2)"
            } else {
                let x1 = from.column * Self.columnWidth, x2 = to.column * Self.columnWidth + Self.boxWidth
                path = "M\(x1),\(y1) C\(x1 - 30),\(y1) \(x2 + 30),\(y2) \(x2 + 2),\(y2)"
            }
            parts.append("<path class=\"edge\(edge.isParent ? "" : " behind")\" d=\"\(path)\" marker-end=\"url(#arrow)\"/>")
        }
        for box in boxes {
            let x = box.column * Self.columnWidth + 2, y = box.row * Self.rowHeight + 4
            parts.append("""
                <g class="session\(box.isRoot ? " root" : "")" data-pid="\(box.pid)"><rect x="\(x)" y="\(y)" width="\(Self.boxWidth)" height="\(Self.boxHeight)" rx="5"/>\
                <text x="\(x + 8)" y="\(y + 14)">pid \(box.pid)\(box.isRoot ? " · ROOT BLOCKER" : "")</text>\
                <text class="sub" x="\(x + 8)" y="\(y + 28)">\(String(label(box.pid).prefix(26)))</text></g>
                """)
        }
        let more: HTML = omitted > 0 ? "<p class=\"quiet\">\(omitted) more sessions not drawn.</p>" : .empty
        return """
            <svg class="graph" role="img" aria-label="blocking graph" width="\(width + 10)" height="\(height + 8)" viewBox="0 0 \(width + 10) \(height + 8)" xmlns="http://www.w3.org/2000/svg">\
            <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>\
            \(parts)</svg>\(more)
            """
    }
}
