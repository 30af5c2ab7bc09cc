import Foundation
import PostgresLocks
import PostgresNIO

extension SoakWorkload {
    /// Terminates one of the run's backends every `every` on average, preferring sessions in
    /// the middle of something (a transaction, a query, a lock wait) three times out of four.
    package func terminateBackends(every: Duration, context: SoakContext, stop: SetOnceFlag) async {
        var settings = context.settings
        settings.applicationName = applicationName + "-faults"
        var connection: PostgresConnection?
        while await SetOnceFlag.sleep(randomDuration(every / 2, every * 3 / 2), unless: stop) {
            do {
                if connection == nil || connection!.isClosed {
                    if let old = connection { try? await old.close() }
                    connection = nil
                    connection = try await PostgresConnection.connect(
                        configuration: try settings.makeConnectionConfiguration(), id: Int.random(in: 1...Int(Int32.max)), logger: context.logger
                    )
                }
                let preferBusy = Int.random(in: 0..<4) != 0
                let terminated = try await connection!.checkedQuery("""
                    SELECT pg_terminate_backend(pid) FROM (
                        SELECT pid FROM pg_stat_activity
                        WHERE datname = current_database() AND application_name = \(applicationName) AND pid <> pg_backend_pid()
                        ORDER BY CASE WHEN \(preferBusy) AND state <> 'idle' THEN 0 ELSE 1 END, random()
                        LIMIT 1
                    ) victim
                    """, logger: context.logger).rows
                if let row = terminated.first, try row.decode(Bool.self) {
                    tallies.update { $0.terminations += 1 }
                }
            } catch {
                // The injector's own session may die in a restart: reconnect on the next tick.
                if let old = connection { try? await old.close() }
                connection = nil
            }
        }
        if let connection { try? await connection.close() }
    }

    /// Restarts the server every `every` (not once `stop` is set; a restart in progress finishes).
    package func restartServer(every: Duration, restart: @Sendable () async throws -> Void, stop: SetOnceFlag) async {
        while await SetOnceFlag.sleep(every, unless: stop) {
            do {
                try await restart()
                tallies.update { $0.restarts += 1 }
            } catch {
                tallies.unexpected(error, during: "server restart")
            }
        }
    }

    /// Advisory locks held by the run's sessions once every call has returned. A session that
    /// is closing may still show its locks for a moment, so this waits up to 5 s for the count
    /// to reach 0 and reports what is left.
    package func leakedLocks(_ context: SoakContext) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            let held = try await context.client.checkedQuery("""
                SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'advisory' AND a.datname = current_database() AND a.application_name = \(applicationName)
                  AND a.pid <> pg_backend_pid()
                """, logger: context.logger).rows[0].decode(Int64.self)
            if held == 0 || ContinuousClock.now >= deadline { return Int(held) }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
