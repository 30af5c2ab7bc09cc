import Logging
import PostgresNIO

/// The I/O of the pooling probe (see ``PoolingProbeRound``): runs on two client connections
/// that go through the same path to the server. It takes no lock and writes nothing, so it
/// leaves nothing behind on a pooled server process.
enum PoolingProbe {
    /// How many rounds are run. Behind a transaction pooler with idle server connections the
    /// first round decides (the pooler hands B the server process A just used); more rounds
    /// cover a busy pool, where B may get another process by chance.
    static let rounds = 3

    /// Runs the probe and returns what it found.
    static func run(first: PostgresConnection, second: PostgresConnection, logger: Logger) async throws -> ConnectionPooling {
        var found: [PoolingProbeRound] = []
        for _ in 0..<rounds {
            let round = PoolingProbeRound(
                pidOfA: try await serverProcess(of: first, logger: logger),
                pidOfB: try await serverProcess(of: second, logger: logger),
                pidOfAAgain: try await serverProcess(of: first, logger: logger)
            )
            found.append(round)
            if round.verdict == .transactionPooling { break }
        }
        return PoolingProbeRound.verdict(of: found)
    }

    /// The server process that runs this statement (never cached: that is what is probed).
    private static func serverProcess(of connection: PostgresConnection, logger: Logger) async throws -> Int32 {
        try await connection.runStatement("SELECT pg_backend_pid()", logger: logger).rows[0].decode(Int32.self)
    }
}
