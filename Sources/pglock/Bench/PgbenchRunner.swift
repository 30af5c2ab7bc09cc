import EphemeralPostgres
import Foundation
import Histogram
import PostgresLocks
import Subprocess
import PglockHarness
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Runs the same SQL with `pgbench` (C, libpq, prepared statements): the physical limit on this machine.
struct PgbenchRunner {
    var executable: String
    var settings: ConnectionSettings

    /// Finds `pgbench` on PATH or next to the server programs.
    static func locate() -> String? {
        for folder in PostgresBinaries.searchPath() where FileManager.default.isExecutableFile(atPath: folder + "/pgbench") {
            return folder + "/pgbench"
        }
        return nil
    }

    /// Runs `script` as ``run(script:clients:duration:variables:)`` does with the harness's
    /// concurrency and duration, saying `step` and then the result on `progress`.
    func measure(_ step: String, script: String, harness: BenchHarness, variables: [String: String], progress: Progress) async throws -> LatencyStats {
        progress.step(step)
        let stats = try await run(script: script, clients: harness.concurrency, duration: harness.duration, variables: variables)
        progress.done(stats.summary)
        return stats
    }

    /// Runs `script` with `clients` connections (on at most two threads) for `duration` in whole
    /// seconds, at least one; latencies from pgbench's per-transaction log.
    func run(script: String, clients: Int, duration: Duration, variables: [String: String]) async throws -> LatencyStats {
        let (threads, duration) = (min(clients, 2), max(1, Int(duration.components.seconds)))
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pglock-bench-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let scriptPath = folder.appendingPathComponent("script.sql").path
        try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)

        var arguments = ["-n", "-M", "prepared", "-c", "\(clients)", "-j", "\(threads)", "-T", "\(duration)", "-f", scriptPath,
                         "-l", "--log-prefix", folder.appendingPathComponent("log").path]
        for (name, value) in variables.sorted(by: { $0.key < $1.key }) { arguments += ["-D", "\(name)=\(value)"] }
        var environment: [Environment.Key: String?] = ["PGUSER": settings.user, "PGDATABASE": settings.database, "PGPORT": "\(settings.port)", "PGAPPNAME": "pgbench"]
        switch settings.host {
        case .tcp(let host): environment["PGHOST"] = host
        case .unixSocketDirectory(let directory): environment["PGHOST"] = directory
        }
        if let password = settings.password { environment["PGPASSWORD"] = password }
        let result = try await Subprocess.run(
            .path(FilePath(executable)), arguments: Arguments(arguments),
            environment: .inherit.updating(environment),
            workingDirectory: FilePath(folder.path),
            output: .string(limit: 1 << 20), error: .string(limit: 1 << 20)
        )
        guard result.terminationStatus.isSuccess else {
            throw PostgresLocksError(code: .client, message: "pgbench failed (\(result.terminationStatus)): \(result.standardError.suffix(500))")
        }
        var histogram = LatencyStats.emptyHistogram()
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path) where file.hasPrefix("log") {
            let text = try String(contentsOfFile: folder.appendingPathComponent(file).path, encoding: .utf8)
            for line in text.split(separator: "\n") {
                // client_id transaction_no time script_no time_epoch time_us
                let fields = line.split(separator: " ")
                if fields.count >= 3, let micros = UInt64(fields[2]) { _ = histogram.record(max(micros, 1)) }
            }
        }
        let tps = result.standardOutput.split(separator: "\n").first { $0.hasPrefix("tps = ") }
            .flatMap { Double($0.dropFirst(6).split(separator: " ")[0]) } ?? 0
        var stats = LatencyStats(histogram: histogram, seconds: Double(duration))
        if tps > 0 { stats.opsPerSecond = tps }
        return stats
    }
}
