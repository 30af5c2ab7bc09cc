import NIOCore
@testable import PostgresLocks
import PostgresNIO
import Testing

/// The arrays of the hot statements, written in one buffer, read by the server exactly as
/// PostgresNIO's element-by-element encoding is.
@Suite("Prepared statement arrays")
struct PreparedSQLArrayTests {
    @Test func arraysAreEncodedAsPostgresNIOEncodesThem() {
        let int64s: [Int64] = [1, -2, .max, .min, 0]
        let int32s: [Int32] = [7, .max, .min]
        let bools = [true, false, true]
        let ours = PreparedSQL("", [.int64Array(int64s), .int32Array(int32s), .boolArray(bools), .int64Array([])]).postgresData
        let theirs = [
            PostgresData(array: int64s.map { PostgresData(int64: $0) }, elementType: .int8),
            PostgresData(array: int32s.map { PostgresData(int32: $0) }, elementType: .int4),
            PostgresData(array: bools.map { PostgresData(bool: $0) }, elementType: .bool),
            PostgresData(array: [], elementType: .int8),
        ]
        #expect(ours.count == theirs.count)
        for (mine, reference) in zip(ours, theirs) {
            #expect(mine.type == reference.type)
            #expect(mine.formatCode == reference.formatCode)
            #expect(mine.value == reference.value)
        }
    }
}
