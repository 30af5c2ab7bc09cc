@testable import PostgresLocks
import Testing

@Suite("Leasing again after a closed connection")
struct DeadLeaseRetryTests {
    @Test func pausesDoubleFromOneMillisecondUpToFifty() {
        var retry = DeadLeaseRetry(budget: .seconds(10))
        let start = ContinuousClock.now
        var pauses: [Duration] = []
        var answers: [Bool] = []
        for _ in 1...9 {
            answers.append(retry.shouldLeaseAgain(now: start))
            pauses.append(retry.pause)
        }
        #expect(answers.allSatisfy { $0 })
        #expect(pauses == [1, 2, 4, 8, 16, 32, 50, 50, 50].map { .milliseconds($0) })
        #expect(retry.count == 9)
    }

    @Test func theBudgetRunsFromTheFirstDeadLease() {
        var retry = DeadLeaseRetry(budget: .seconds(2))
        let first = ContinuousClock.now
        let answers = [
            retry.shouldLeaseAgain(now: first),
            retry.shouldLeaseAgain(now: first + .milliseconds(1999)),
            retry.shouldLeaseAgain(now: first + .seconds(2)),
        ]
        #expect(answers == [true, true, false])
        #expect(retry.count == 2)
    }

    @Test func aZeroBudgetNeverLeasesAgain() {
        var retry = DeadLeaseRetry(budget: .zero)
        let again = retry.shouldLeaseAgain(now: .now)
        #expect(!again)
    }
}
