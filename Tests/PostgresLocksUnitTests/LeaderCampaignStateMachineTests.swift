@testable import PostgresLocks
import Testing

@Suite("Leader campaign: what follows a probe and a round")
struct LeaderCampaignStateMachineTests {
    static let backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(1))
    static let lost = PostgresLocksError(code: .connectionLost, message: "x")
    static let badPassword = PostgresLocksError(code: .server, message: "x", sqlState: "28P01")

    /// A round's next step, as text: "stop", "stop: <code>", or "pause ≤<ceiling ms>[: <code>]".
    static func describe(_ step: LeaderCampaignStateMachine.NextStep) -> String {
        switch step {
        case .stop(let failure):
            return failure.map { "stop: \(($0 as? PostgresLocksError)?.code.name ?? "?")" } ?? "stop"
        case .reconnect(let delay, let failure):
            let ceiling = [100, 200, 400, 800, 1000].first { delay <= .milliseconds($0) } ?? 0
            return "pause ≤\(ceiling)" + (failure.map { ": \(($0 as? PostgresLocksError)?.code.name ?? "?")" } ?? "")
        }
    }

    @Test func theProbeDecidesWhetherToCampaign() {
        let machine = LeaderCampaignStateMachine(backoff: Self.backoff)
        #expect(machine.probed(.sessionPerConnection) == .campaign)
        #expect(machine.probed(.unknown) == .connectToDiagnose)
        #expect(machine.probed(.transactionPooling) == .refuse)
    }

    @Test func failedRoundsBackOffAndAHealthyOneStartsOver() {
        var machine = LeaderCampaignStateMachine(backoff: Self.backoff)
        var random = SystemRandomNumberGenerator()
        let steps = [(false), (false), (false), (true), (false)].map { healthy in
            Self.describe(machine.roundEnded(.failed(Self.lost, permanent: false), healthy: healthy, led: false, stopRequested: false, using: &random))
        }
        #expect(steps == ["pause ≤100: connectionLost", "pause ≤200: connectionLost", "pause ≤400: connectionLost", "pause ≤100: connectionLost", "pause ≤200: connectionLost"])
    }

    @Test func aLeaderThatLostItsSessionStepsBackLongEnoughForAPollingFollowerToTakeOver() {
        var machine = LeaderCampaignStateMachine(backoff: Backoff(initial: .milliseconds(20), maximum: .seconds(1)), stepBack: .milliseconds(200))
        var random = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            // A follower that lost its session (or never led) comes back on the backoff alone.
            guard case .reconnect(let followerPause, _) = machine.roundEnded(.failed(Self.lost, permanent: false), healthy: true, led: false, stopRequested: false, using: &random) else {
                Issue.record("a lost session must reconnect")
                return
            }
            #expect(followerPause <= .milliseconds(20))
            // A leader whose session ended waits at least the step back, a failure or not.
            for end: LeaderCampaignStateMachine.SessionEnd in [.failed(Self.lost, permanent: false), .finished] {
                guard case .reconnect(let leaderPause, _) = machine.roundEnded(end, healthy: true, led: true, stopRequested: false, using: &random) else {
                    Issue.record("a lost term must reconnect")
                    return
                }
                #expect(leaderPause == .milliseconds(200))
            }
        }
        // A backoff already longer than the step back is kept.
        var slow = LeaderCampaignStateMachine(backoff: Backoff(initial: .seconds(1), maximum: .seconds(1)), stepBack: .milliseconds(200))
        guard case .reconnect(let pause, _) = slow.roundEnded(.finished, healthy: true, led: true, stopRequested: false, using: &random) else { return }
        #expect(pause >= .milliseconds(500))
    }

    @Test func anErrorRetryingCannotFixEndsTheCampaignWithIt() {
        var machine = LeaderCampaignStateMachine(backoff: Self.backoff)
        var random = SystemRandomNumberGenerator()
        let step = machine.roundEnded(.failed(Self.badPassword, permanent: true), healthy: false, led: false, stopRequested: false, using: &random)
        #expect(Self.describe(step) == "stop: server")
    }

    @Test func aStopRequestWinsOverAnyFailure() {
        var machine = LeaderCampaignStateMachine(backoff: Self.backoff)
        var random = SystemRandomNumberGenerator()
        for end: LeaderCampaignStateMachine.SessionEnd in [.finished, .failed(Self.lost, permanent: false), .failed(Self.badPassword, permanent: true)] {
            #expect(Self.describe(machine.roundEnded(end, healthy: true, led: true, stopRequested: true, using: &random)) == "stop")
        }
    }

    @Test func whatRetryingCannotFixIsTold() {
        #expect(LeaderElection.isPermanent(Self.badPassword))
        #expect(LeaderElection.isPermanent(PostgresLocksError(code: .server, message: "x", sqlState: "3D000")))
        #expect(LeaderElection.isPermanent(PostgresLocksError(code: .server, message: "x", sqlState: "42501")))
        #expect(LeaderElection.isPermanent(PostgresLocksError.transactionPooling(feature: "leader election")))
        #expect(!LeaderElection.isPermanent(Self.lost))
        #expect(!LeaderElection.isPermanent(PostgresLocksError(code: .server, message: "x", sqlState: "57P03")))
    }
}
