@testable import PostgresLocks
import Testing

@Suite("Semaphores: permits and the order they are tried in")
struct AdvisorySemaphoreTests {
    @Test func everyPermitIsTriedOnceFromAnyStartWrappingAround() throws {
        let semaphore = try AdvisorySemaphore("renders", permits: 5)
        for start in [-7, -1, 0, 3, 4, 5, 12] {
            let order = semaphore.tryOrder(startingAt: start)
            #expect(order.map(\.index).sorted() == Array(0..<5))
            #expect(order.first?.index == ((start % 5) + 5) % 5)
            for (offset, entry) in order.enumerated() {
                #expect(entry.index == (order[0].index + offset) % 5)
                #expect(entry.key == semaphore.permitKey(entry.index))
            }
        }
    }

    @Test func permitKeysAreTheDocumentedHashesAndDifferByNameAndIndex() throws {
        let a = try AdvisorySemaphore("a", permits: 3)
        let b = try AdvisorySemaphore("b", permits: 3)
        #expect(a.permitKey(2) == LockKey.hashed("semaphore:a:2"))
        let keys = Set((0..<3).map(a.permitKey) + (0..<3).map(b.permitKey))
        #expect(keys.count == 6)
        // The permits do not change the keys: processes that disagree on them still share slots.
        #expect(try AdvisorySemaphore("a", permits: 7).permitKey(1) == a.permitKey(1))
    }

    @Test func namesAndPermitCountsOutOfRangeAreRefused() {
        for (name, permits) in [("", 1), ("x\u{0}", 1), ("x", 0), ("x", -3), ("x", AdvisorySemaphore.maximumPermits + 1)] {
            #expect(throws: PostgresLocksError.self) { try AdvisorySemaphore(name, permits: permits) }
        }
        #expect(throws: Never.self) { try AdvisorySemaphore("x", permits: AdvisorySemaphore.maximumPermits) }
        #expect("\(try! AdvisorySemaphore("x", permits: 1))" == #"semaphore "x" (1 permit)"#)
    }
}
