@testable import PostgresQueue
import Testing

@Suite("PostgresQueue notify debounce")
struct NotifyDebouncerTests {
    @Test func oneNotificationPerQueuePerInterval() {
        var debouncer = NotifyDebouncer(interval: .milliseconds(10))
        let start = ContinuousClock.now
        let decisions = [
            debouncer.shouldNotify(queue: "a", at: start),
            debouncer.shouldNotify(queue: "a", at: start + .milliseconds(5)),
            debouncer.shouldNotify(queue: "b", at: start + .milliseconds(5)),
            debouncer.shouldNotify(queue: "a", at: start + .milliseconds(10)),
        ]
        #expect(decisions == [true, false, true, true])
        var never = NotifyDebouncer(interval: .zero)
        let first = never.shouldNotify(queue: "a", at: start)
        let second = never.shouldNotify(queue: "a", at: start)
        #expect(first && second)
    }
}
