@testable import PostgresLocks
import Testing

/// `ServerDiagnosis.evaluate` judged on fixed facts, without a server.
@Suite("Server diagnosis")
struct ServerDiagnosisTests {
    /// Facts of a healthy PostgreSQL 15 reached directly.
    static func facts(
        version: Int = 150_004,
        pooling: ConnectionPooling = .sessionPerConnection,
        exclude: Bool? = true,
        pooler: String? = nil,
        locksInUse: Int = 10,
        idleInTransaction: Int = 60_000,
        deadlockTimeout: Int = 1000
    ) -> ServerDiagnosis.Facts {
        ServerDiagnosis.Facts(
            serverVersionNumber: version, serverVersion: "\(version / 10000).\(version % 100)",
            environment: AdvisoryLockEnvironment(serverVersion: "15.4", pooling: pooling, advisoryLocksExclude: exclude),
            poolerName: pooler, maxLocksPerTransaction: 64, maxConnections: 100, maxPreparedTransactions: 0,
            locksInUse: locksInUse, idleInTransactionTimeoutMilliseconds: idleInTransaction,
            deadlockTimeoutMilliseconds: deadlockTimeout, lockTimeoutMilliseconds: 0, statementTimeoutMilliseconds: 0
        )
    }

    static func level(_ check: String, _ verdicts: [ServerDiagnosis.Verdict]) -> ServerDiagnosis.Level? {
        verdicts.first { $0.check == check }?.level
    }

    @Test func aHealthyServerPassesEveryCheck() {
        let verdicts = ServerDiagnosis.evaluate(Self.facts())
        #expect(verdicts.allSatisfy { $0.level == .ok })
        #expect(verdicts.map(\.check) == [
            "server version", "pooling proxy", "advisory locks exclude", "lock table",
            "idle_in_transaction_session_timeout", "deadlock_timeout", "lock_timeout default", "statement_timeout default",
        ])
    }

    @Test func transactionPoolingIsAWarningThatNamesThePoolerAndTheWaysOut() {
        let verdicts = ServerDiagnosis.evaluate(Self.facts(pooling: .transactionPooling, exclude: nil, pooler: "PgBouncer 1.18.0"))
        let pooling = verdicts.first { $0.check == "pooling proxy" }
        #expect(pooling?.level == .warning)
        #expect(pooling?.detail.contains("transaction pooling (PgBouncer 1.18.0)") == true)
        #expect(pooling?.detail.contains("session pool mode or a direct URL") == true)
        // Not asked behind transaction pooling: not blamed on the engine.
        #expect(Self.level("advisory locks exclude", verdicts) == .warning)
        #expect(ServerDiagnosis(facts: Self.facts(pooling: .transactionPooling, exclude: nil), verdicts: verdicts).passed)
    }

    @Test func anEngineWhoseLocksDoNotExcludeFails() {
        let verdicts = ServerDiagnosis.evaluate(Self.facts(exclude: false))
        #expect(Self.level("advisory locks exclude", verdicts) == .failure)
        #expect(!ServerDiagnosis(facts: Self.facts(exclude: false), verdicts: verdicts).passed)
    }

    @Test func versionsAndLimitsAreGraded() {
        #expect(Self.level("server version", ServerDiagnosis.evaluate(Self.facts(version: 130_010))) == .warning)
        #expect(Self.level("server version", ServerDiagnosis.evaluate(Self.facts(version: 110_020))) == .failure)
        // 64 × 100 = 6400 entries: half and nine tenths are the bounds.
        #expect(Self.level("lock table", ServerDiagnosis.evaluate(Self.facts(locksInUse: 3199))) == .ok)
        #expect(Self.level("lock table", ServerDiagnosis.evaluate(Self.facts(locksInUse: 3200))) == .warning)
        #expect(Self.level("lock table", ServerDiagnosis.evaluate(Self.facts(locksInUse: 5760))) == .failure)
        #expect(Self.level("idle_in_transaction_session_timeout", ServerDiagnosis.evaluate(Self.facts(idleInTransaction: 0))) == .warning)
        #expect(Self.level("deadlock_timeout", ServerDiagnosis.evaluate(Self.facts(deadlockTimeout: 10_000))) == .warning)
    }
}
