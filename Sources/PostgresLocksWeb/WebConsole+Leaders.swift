import PostgresLocks

extension WebConsole {
    /// Every election's leader, term and since when.
    func leadersPage(_ request: PageRequest) async throws -> ConsolePage {
        var rows: [HTML] = []
        for table in configuration.leaderTermsTables {
            for term in try await LeaderTerm.all(in: table, on: client, logger: logger) {
                let now: HTML = term.lockHolderPID.map { "pid \($0) [\(term.lockHolderApplication ?? "")]" } ?? "<span class=\"warn\">no leader now</span>"
                rows.append("<tr class=\"election\" data-election=\"\(term.election)\"><td>\(term.election)</td><td class=\"num\">\(term.term)</td><td>\(term.holder)</td><td>\(Format.time(term.since))</td><td>\(now)</td></tr>")
            }
        }
        let body: HTML = rows.isEmpty
            ? "<p class=\"quiet\">No election has started a term yet.</p>"
            : "<table><thead><tr><th>election</th><th>term</th><th>leader</th><th>since</th><th>holding the lock now</th></tr></thead><tbody>\(rows)</tbody></table>"
        return ConsolePage(title: "Leaders", main: "<h1>Leaders</h1>\(body)")
    }

    /// The doctor's findings.
    func doctorPage(_ request: PageRequest) async throws -> ConsolePage {
        let diagnosis = try await client.diagnose(settings: configuration.connection, logger: logger)
        let rows: [HTML] = diagnosis.verdicts.map { verdict in
            "<tr class=\"verdict level-\(verdict.level.rawValue.lowercased())\"><td>\(verdict.level.rawValue)</td><td>\(verdict.check)</td><td>\(verdict.detail)</td></tr>"
        }
        return ConsolePage(title: "Doctor", main: """
            <h1>Doctor</h1>
            <p class="summary">\(diagnosis.passed ? "The library's promises hold on this server." : "A check failed: see below.") PostgreSQL \(diagnosis.facts.serverVersion).</p>
            <table><thead><tr><th></th><th>check</th><th>detail</th></tr></thead><tbody>\(rows)</tbody></table>
            """)
    }
}
