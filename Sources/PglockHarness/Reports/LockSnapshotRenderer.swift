import Foundation
import PostgresLocks

/// Renders a ``LockSnapshot`` as plain text for `pglock locks` and `pglock top`. Pure.
package struct LockSnapshotRenderer {
    /// Names to show for hashed keys (`payment:order-123` instead of its 64-bit hash).
    package var knownNames: [LockKey: String] = [:]
    /// The width to fit (long cells are cut).
    package var width = 160

    /// Creates a value from its parts.
    package init(
        knownNames: [LockKey: String] = [:]
    ) {
        self.knownNames = knownNames
    }

    package func keyText(_ target: LockSnapshot.Target) -> String {
        target.description(names: knownNames)
    }

    package func render(_ snapshot: LockSnapshot) -> String {
        var out = ""
        let sessionsByPID = Dictionary(uniqueKeysWithValues: snapshot.sessions.map { ($0.pid, $0) })
        let waiting = snapshot.locks.filter { !$0.granted }
        let held = snapshot.locks.filter(\.granted)
        out += "\(snapshot.sessions.count) sessions, \(held.count + snapshot.omittedLocks) locks held, \(waiting.count) waiting\n\n"

        let trees = snapshot.blockingTree
        if !trees.isEmpty {
            out += "BLOCKING (root blockers first)\n"
            func line(_ node: BlockingTree.Node, depth: Int) {
                let session = sessionsByPID[node.pid]
                let wants = waiting.first { $0.pid == node.pid }
                var text = String(repeating: "  ", count: depth) + (depth == 0 ? "● " : "└ ") + "pid \(node.pid)"
                if let session {
                    text += " [\(session.applicationName.isEmpty ? "-" : session.applicationName)] \(session.state)"
                    if let age = session.transactionSeconds { text += ", tx \(Self.seconds(age))" }
                }
                if let wants {
                    text += " waits \(Self.seconds(wants.waitingSeconds ?? 0)) for \(keyText(wants.target)) \(wants.mode)"
                    if node.blockedBy.count > 1 { text += ", behind pids \(node.blockedBy.map(String.init).joined(separator: ", "))" }
                } else if depth == 0 {
                    text += " — ROOT BLOCKER, \(node.waiterCount) \(node.waiterCount == 1 ? "session" : "sessions") waiting behind it"
                }
                out += cut(text) + "\n"
                for child in node.waiters { line(child, depth: depth + 1) }
            }
            for tree in trees { line(tree, depth: 0) }
            out += "\n"
        }

        out += "LOCKS\n"
        let header = ["pid", "application", "client", "state", "tx age", "lock", "mode", "granted", "waiting"]
        var rows: [[String]] = []
        for lock in waiting + held {
            let session = sessionsByPID[lock.pid]
            rows.append([
                "\(lock.pid)", session?.applicationName ?? "", session?.client ?? "", session?.state ?? "",
                session?.transactionSeconds.map(Self.seconds) ?? "", keyText(lock.target), lock.mode,
                lock.granted ? "yes" : "WAIT", lock.waitingSeconds.map(Self.seconds) ?? "",
            ])
        }
        out += table(header: header, rows: rows)
        if snapshot.omittedLocks > 0 {
            out += "… and \(snapshot.omittedLocks) more locks held by sessions nobody waits for\n"
        }
        return out
    }

    package func table(header: [String], rows: [[String]]) -> String {
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            var text = zip(cells, widths).map { cell, width in cell + String(repeating: " ", count: max(0, width - cell.count)) }.joined(separator: "  ")
            while text.last == " " { text.removeLast() }
            return cut(text)
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n") + "\n"
    }

    package func cut(_ text: String) -> String {
        text.count <= width ? text : String(text.prefix(max(width - 1, 1))) + "…"
    }

    package static func seconds(_ value: Double) -> String {
        value < 1 ? "\(Int(value * 1000))ms" : (value < 120 ? String(format: "%.1fs", value) : "\(Int(value / 60))m")
    }
}
