import PostgresLocks
import Testing

@Suite("Reconnecting a service's session")
struct ReconnectScheduleTests {
    /// The pauses' ceilings: `Backoff` gives between half and all of each.
    static func ceilings(_ healthy: [Bool]) -> [Duration] {
        var schedule = ReconnectSchedule(backoff: Backoff(initial: .milliseconds(100), maximum: .seconds(1)))
        var random = SystemRandomNumberGenerator()
        return healthy.map { wasHealthy in
            let pause = schedule.pauseAfterSession(healthy: wasHealthy, using: &random)
            let ceiling = Duration.milliseconds(min(1000, 100 << (schedule.failuresInARow - 1)))
            #expect(pause >= ceiling / 2 && pause <= ceiling)
            return ceiling
        }
    }

    @Test func failuresInARowBackOffUpToTheCeiling() {
        #expect(Self.ceilings([false, false, false, false, false, false]).map(\.components.seconds) == [0, 0, 0, 0, 1, 1])
        #expect(Self.ceilings([false, false, false]) == [.milliseconds(100), .milliseconds(200), .milliseconds(400)])
    }

    @Test func aHealthySessionStartsTheBackoffOver() {
        #expect(Self.ceilings([false, false, false, true, false]) == [100, 200, 400, 100, 200].map { .milliseconds($0) })
    }
}
