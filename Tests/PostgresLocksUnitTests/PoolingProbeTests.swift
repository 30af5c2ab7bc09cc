@testable import PostgresLocks
import Testing

/// The pooling probe's verdicts, from the server processes each round saw (no server needed).
@Suite("Pooling probe verdicts")
struct PoolingProbeTests {
    private static func round(_ a: Int32, _ b: Int32, _ aAgain: Int32) -> PoolingProbeRound {
        PoolingProbeRound(pidOfA: a, pidOfB: b, pidOfAAgain: aAgain)
    }

    @Test func aDirectConnectionKeepsItsSessionInEveryRound() {
        #expect(Self.round(10, 20, 10).verdict == .sessionPerConnection)
        #expect(PoolingProbeRound.verdict(of: [Self.round(10, 20, 10), Self.round(10, 20, 10), Self.round(10, 20, 10)]) == .sessionPerConnection)
    }

    @Test func aSecondConnectionServedByTheFirstOnesProcessShowsTransactionPooling() {
        // An idle transaction pooler hands B the process A just released.
        #expect(Self.round(10, 10, 10).verdict == .transactionPooling)
        #expect(Self.round(10, 11, 11).verdict == .transactionPooling)
    }

    @Test func aFirstConnectionThatMovedShowsTransactionPooling() {
        #expect(Self.round(10, 20, 11).verdict == .transactionPooling)
    }

    @Test func oneRoundThatShowsPoolingDecides() {
        let rounds = [Self.round(10, 20, 10), Self.round(10, 10, 10), Self.round(10, 20, 10)]
        #expect(PoolingProbeRound.verdict(of: rounds) == .transactionPooling)
    }

    @Test func noRoundGivesUnknown() {
        #expect(PoolingProbeRound.verdict(of: []) == .unknown)
    }

    @Test func aPoolerNamesItselfInItsRefusal() {
        struct Refusal: Error, CustomDebugStringConvertible { var debugDescription: String }
        #expect(ConnectionSettings.poolerName(fromRefusal: Refusal(debugDescription: "FATAL: not allowed")) == "PgBouncer")
        #expect(ConnectionSettings.poolerName(fromRefusal: Refusal(debugDescription: "server: extended query protocol not supported by admin console (08P01)")) == "PgBouncer")
        #expect(ConnectionSettings.poolerName(fromRefusal: Refusal(debugDescription: "connection refused")) == nil)
    }
}
