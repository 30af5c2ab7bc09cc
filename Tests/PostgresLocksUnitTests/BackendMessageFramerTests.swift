@testable import PostgresLocks
import Testing

/// The framer that reads each `ReadyForQuery`'s transaction status, fed bytes in any split.
@Suite("Backend message framing")
struct BackendMessageFramerTests {
    /// One backend message: type, length (counting itself), body.
    private static func message(_ type: Character, _ body: [UInt8]) -> [UInt8] {
        let length = UInt32(body.count + 4)
        return [type.asciiValue!, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + body
    }

    private static func ready(_ status: UInt8) -> [UInt8] { message("Z", [status]) }

    /// A result as a server sends it: RowDescription, DataRows, CommandComplete, ReadyForQuery.
    private static func exchange(ending status: UInt8) -> [UInt8] {
        message("1", []) + message("2", []) + message("T", Array(repeating: 7, count: 29))
            + message("D", Array(repeating: 1, count: 300)) + message("D", Array(repeating: 2, count: 11))
            + message("C", Array("SELECT 2\0".utf8)) + ready(status)
    }

    private static func feed(_ bytes: [UInt8], in chunks: [Int], into framer: inout BackendMessageFramer) -> [BackendMessageFramer.TransactionStatus] {
        var seen: [BackendMessageFramer.TransactionStatus] = []
        var offset = 0
        var sizes = chunks.makeIterator()
        while offset < bytes.count {
            let size = min(sizes.next() ?? bytes.count, bytes.count - offset)
            let status = bytes[offset..<offset + size].withUnsafeBytes { framer.consume($0) }.status
            if let status { seen.append(status) }
            offset += size
        }
        return seen
    }

    @Test func statusOfTheLastReadyForQueryIsReported() {
        var framer = BackendMessageFramer()
        let bytes = Self.exchange(ending: 0x49) + Self.exchange(ending: 0x54)
        #expect(Self.feed(bytes, in: [bytes.count], into: &framer) == [.inTransaction])
        #expect(!framer.isLost)
    }

    @Test func aStatementsEndIsAwaitingItsReadyForQueryUntilItArrives() {
        var framer = BackendMessageFramer()
        let exchange = Self.exchange(ending: 0x49)
        let readyLength = Self.ready(0x49).count
        // Everything up to the CommandComplete: awaiting; the ReadyForQuery: no longer.
        let upToEnd = Array(exchange.dropLast(readyLength))
        #expect(upToEnd.withUnsafeBytes { framer.consume($0) }.awaitingReady == true)
        #expect(Self.ready(0x49).withUnsafeBytes { framer.consume($0) }.awaitingReady == false)
        // Both in one read: not awaiting.
        #expect(exchange.withUnsafeBytes { framer.consume($0) }.awaitingReady == false)
        // Rows alone say nothing; an error (a fatal one has no ReadyForQuery after it) awaits.
        #expect(Self.message("D", [1, 2, 3]).withUnsafeBytes { framer.consume($0) }.awaitingReady == nil)
        #expect((Self.message("C", Array("INSERT 0 1\0".utf8)) + Self.message("E", Array(repeating: 9, count: 20))).withUnsafeBytes { framer.consume($0) }.awaitingReady == true)
        #expect(Self.message("I", []).withUnsafeBytes { framer.consume($0) }.awaitingReady == true)
        #expect(!framer.isLost)
    }

    @Test func messagesSplitAtEveryByteAreFollowed() {
        for status: UInt8 in [0x49, 0x54, 0x45] {
            var framer = BackendMessageFramer()
            let bytes = Self.exchange(ending: 0x49) + Self.message("N", Array(repeating: 3, count: 40)) + Self.exchange(ending: status)
            let seen = Self.feed(bytes, in: Array(repeating: 1, count: bytes.count), into: &framer)
            #expect(seen.count == 2)
            #expect(seen.last?.rawValue == status)
            #expect(!framer.isLost)
        }
    }

    @Test func chunksOfEverySizeGiveTheSameStatuses() {
        let bytes = Self.exchange(ending: 0x54) + Self.exchange(ending: 0x45) + Self.exchange(ending: 0x49)
        for size in 1...64 {
            var framer = BackendMessageFramer()
            var seen: [BackendMessageFramer.TransactionStatus] = []
            var offset = 0
            while offset < bytes.count {
                let end = min(offset + size, bytes.count)
                let chunk = Array(bytes[offset..<end])
                if let status = chunk.withUnsafeBytes({ framer.consume($0) }).status { seen.append(status) }
                offset = end
            }
            #expect(seen.last == .idle, "chunk size \(size)")
            #expect(!framer.isLost)
        }
    }

    @Test func rollbackCommandTagsAreCountedInChunksOfEverySize() {
        // COMMIT of a failed transaction answers the tag ROLLBACK; look-alikes are not counted.
        let bytes = Self.message("C", Array("COMMIT\0".utf8)) + Self.ready(0x49)
            + Self.message("C", Array("ROLLBACK\0".utf8)) + Self.ready(0x49)
            + Self.message("C", Array("ROLLBACX\0".utf8)) + Self.message("D", Array("ROLLBACK\0".utf8))
            + Self.message("C", Array("ROLLBACK".utf8)) + Self.message("C", Array("ROLLBACK \0".utf8))
            + Self.exchange(ending: 0x54) + Self.message("C", Array("ROLLBACK\0".utf8)) + Self.ready(0x49)
        for size in 1...bytes.count {
            var framer = BackendMessageFramer()
            var tags = 0, offset = 0
            while offset < bytes.count {
                let end = min(offset + size, bytes.count)
                tags += Array(bytes[offset..<end]).withUnsafeBytes { framer.consume($0) }.rollbackTags
                offset = end
            }
            #expect(tags == 2, "chunk size \(size)")
            #expect(!framer.isLost)
        }
    }

    @Test func bytesThatAreNotMessagesStopTheReport() {
        var framer = BackendMessageFramer()
        let garbage: [UInt8] = [0x00, 0xFF, 0xFF, 0xFF, 0xFF] + Self.ready(0x49)
        #expect(Self.feed(garbage, in: [garbage.count], into: &framer).isEmpty)
        #expect(framer.isLost)
        let afterwards = Self.ready(0x54)
        #expect(Self.feed(afterwards, in: [afterwards.count], into: &framer).isEmpty)
    }

    @Test func aReadyForQueryWithAWrongLengthIsNotTrusted() {
        var framer = BackendMessageFramer()
        let bytes = Self.message("Z", [0x49, 0x49])
        #expect(Self.feed(bytes, in: [bytes.count], into: &framer).isEmpty)
        #expect(framer.isLost)
    }
}
