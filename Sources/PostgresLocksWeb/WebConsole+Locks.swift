import Foundation
import PostgresLocks

extension WebConsole {
    /// The locks page: root blockers first, the blocking graph, waiters and holders.
    func locksPage(_ request: PageRequest) async throws -> ConsolePage {
        let snapshot = try await client.lockSnapshot(limit: configuration.lockLimit, logger: logger)
        var names = knownNames
        for table in configuration.leaderTermsTables {
            for term in (try? await LeaderTerm.all(in: table, on: client, logger: logger)) ?? [] { names[.hashed(term.election)] = term.election }
        }
        let sessions = Dictionary(uniqueKeysWithValues: snapshot.sessions.map { ($0.pid, $0) })
        let trees = snapshot.blockingTree
        let waiting = snapshot.locks.filter { !$0.granted }
        let held = snapshot.locks.filter(\.granted)
        func target(_ target: LockSnapshot.Target) -> String { target.description(names: names) }
        func application(_ pid: Int32) -> String { sessions[pid].map { $0.applicationName.isEmpty ? "-" : $0.applicationName } ?? "" }

        var main: HTML = """
            <h1>Locks</h1>
            <p class="summary"><span id="lock-sessions">\(snapshot.sessions.count)</span> sessions · <span id="locks-held">\(held.count + snapshot.omittedLocks)</span> locks held · <span id="locks-waiting">\(waiting.count)</span> waiting · <span id="root-blockers">\(trees.count)</span> root blockers · taken \(Format.time(snapshot.takenAt))</p>
            """
        if !trees.isEmpty {
            var rows: [HTML] = []
            for tree in trees {
                let session = sessions[tree.pid]
                let actions: HTML = actionButton("Cancel", path: "/backends/\(tree.pid)/cancel", request: request)
                    + actionButton("Terminate", path: "/backends/\(tree.pid)/terminate", request: request, danger: true)
                rows.append("""
                    <tr class="root-blocker" data-pid="\(tree.pid)"><td>\(tree.pid)</td><td>\(application(tree.pid))</td><td>\(session?.client ?? "")</td>\
                    <td>\(session?.state ?? "")</td><td>\(Format.seconds(session?.transactionSeconds))</td><td class="waiter-count">\(tree.waiterCount)</td>\
                    <td><code>\(session?.query ?? "")</code></td><td class="actions">\(actions)</td></tr>
                    """)
            }
            main += """
                <h2>Root blockers</h2>
                <table><thead><tr><th>pid</th><th>application</th><th>client</th><th>state</th><th>transaction</th><th>waiting behind it</th><th>query</th><th></th></tr></thead><tbody>\(rows)</tbody></table>
                <h2>Who waits behind whom</h2>
                <div class="graph-box">\(BlockingGraph(trees: trees).svg(label: application))</div>
                """
        } else {
            main += "<p class=\"quiet\">Nobody waits for a lock.</p>"
        }
        if !waiting.isEmpty {
            let blockedBy = Dictionary(uniqueKeysWithValues: snapshot.sessions.map { ($0.pid, $0.blockedBy) })
            let rows: [HTML] = waiting.map { lock in
                "<tr class=\"waiter\" data-pid=\"\(lock.pid)\"><td>\(lock.pid)</td><td>\(application(lock.pid))</td><td>\(target(lock.target))</td><td>\(lock.mode)</td><td>\(Format.seconds(lock.waitingSeconds))</td><td>\((blockedBy[lock.pid] ?? []).map(String.init).joined(separator: ", "))</td></tr>"
            }
            main += "<h2>Waiting</h2><table><thead><tr><th>pid</th><th>application</th><th>lock</th><th>mode</th><th>waited</th><th>behind</th></tr></thead><tbody>\(rows)</tbody></table>"
        }
        let shownHeld = held.prefix(500)
        let rows: [HTML] = shownHeld.map { lock in
            "<tr class=\"holder\" data-pid=\"\(lock.pid)\"><td>\(lock.pid)</td><td>\(application(lock.pid))</td><td>\(target(lock.target))</td><td>\(lock.mode)</td><td>\(sessions[lock.pid]?.state ?? "")</td></tr>"
        }
        let hidden = held.count - shownHeld.count + snapshot.omittedLocks
        main += """
            <h2>Held</h2>
            <table><thead><tr><th>pid</th><th>application</th><th>lock</th><th>mode</th><th>state</th></tr></thead><tbody>\(rows)</tbody></table>
            \(hidden > 0 ? HTML("<p class=\"quiet\">… and \(hidden) more locks held by sessions nobody waits for.</p>") : HTML.empty)
            """
        return ConsolePage(title: "Locks", main: main)
    }
}
