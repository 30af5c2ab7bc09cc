import PostgresLocks
import Testing

@Suite("Backoff")
struct BackoffTests {
    @Test func backoffDoublesUpToItsCapWithEqualJitter() {
        let backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(1))
        var random = SystemRandomNumberGenerator()
        for (attempt, ceiling) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (50, 1000)] {
            for _ in 0..<50 {
                let delay = backoff.delay(afterAttempt: attempt, using: &random)
                #expect(delay >= .milliseconds(ceiling / 2) && delay <= .milliseconds(ceiling))
            }
        }
        #expect(Backoff(initial: .zero, maximum: .zero).delay(afterAttempt: 3) == .zero)
    }
}
