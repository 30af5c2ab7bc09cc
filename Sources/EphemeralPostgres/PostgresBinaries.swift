#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Where the PostgreSQL server programs (`initdb`, `pg_ctl`, `postgres`) are installed.
public struct PostgresBinaries: Sendable, Hashable {
    /// The folder holding all three programs (symbolic links resolved).
    public let directory: String

    /// `initdb`'s path.
    public var initdb: String { directory + "/initdb" }
    /// `pg_ctl`'s path.
    public var pgCtl: String { directory + "/pg_ctl" }
    /// `postgres`'s path.
    public var postgres: String { directory + "/postgres" }

    /// Creates a value for a folder known to hold the programs.
    public init(directory: String) {
        self.directory = directory
    }

    /// The folders searched, in order: each `PATH` entry, then `/usr/lib/postgresql/<version>/bin`
    /// from the newest version down.
    public static func searchPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var folders = (environment["PATH"] ?? "").split(separator: ":").map(String.init)
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .sorted { (Int($0) ?? 0, $0) > (Int($1) ?? 0, $1) }
        folders += versions.map { "\(root)/\($0)/bin" }
        return folders
    }

    /// Finds a folder where `initdb`, `pg_ctl` and `postgres` all are.
    ///
    /// - Throws: ``EphemeralPostgresError/Code/binariesNotFound`` saying what to install.
    public static func locate(searchPath: [String] = PostgresBinaries.searchPath()) throws -> PostgresBinaries {
        for folder in searchPath where !folder.isEmpty {
            let initdb = folder + "/initdb"
            guard access(initdb, X_OK) == 0 else { continue }
            // Resolve symbolic links (e.g. /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb).
            let resolved = URL(fileURLWithPath: initdb).resolvingSymlinksInPath().deletingLastPathComponent().path
            for candidate in [resolved, folder] where access(candidate + "/pg_ctl", X_OK) == 0 && access(candidate + "/postgres", X_OK) == 0 {
                return PostgresBinaries(directory: candidate)
            }
        }
        throw EphemeralPostgresError(
            code: .binariesNotFound,
            message: "the PostgreSQL server programs (initdb, pg_ctl, postgres) were not found on PATH or under /usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: `apt-get install postgresql`), or set DATABASE_URL (or pass --database-url) to use a server you already have."
        )
    }
}
