import NIOCore
import PostgresNIO

/// One of the library's hot statements: a fixed SQL text and its bound values, run as a named
/// prepared statement on each connection (see ``StatementPreparation``).
///
/// The text is built only from fixed texts and validated, quoted identifiers; every value is a
/// bound parameter. The same statement can be run unnamed through ``query``.
struct PreparedSQL: Sendable {
    /// A bound value.
    enum Value: Sendable {
        case int64(Int64)
        case int32(Int32)
        case text(String)
        case bool(Bool)
        case int64Array([Int64])
        case int32Array([Int32])
        case boolArray([Bool])
    }

    /// The statement text, with `$1`, `$2`, … for the values.
    let sql: String
    /// The values, in parameter order.
    let values: [Value]

    init(_ sql: String, _ values: [Value] = []) {
        self.sql = sql
        self.values = values
    }

    /// The statement as an unnamed one (parsed on every run).
    var query: PostgresQuery {
        var bindings = PostgresBindings(capacity: values.count)
        for value in values {
            switch value {
            case .int64(let value): bindings.append(value)
            case .int32(let value): bindings.append(value)
            case .text(let value): bindings.append(value)
            case .bool(let value): bindings.append(value)
            case .int64Array(let value): bindings.append(value)
            case .int32Array(let value): bindings.append(value)
            case .boolArray(let value): bindings.append(value)
            }
        }
        return PostgresQuery(unsafeSQL: sql, binds: bindings)
    }

    /// The values in the form PostgresNIO's prepared-query API binds.
    var postgresData: [PostgresData] {
        values.map { value in
            switch value {
            case .int64(let value): return PostgresData(int64: value)
            case .int32(let value): return PostgresData(int32: value)
            case .text(let value): return PostgresData(string: value)
            case .bool(let value): return PostgresData(bool: value)
            case .int64Array(let value): return Self.binaryArray(value, elementType: .int8, arrayType: .int8Array, width: 8) { buffer, element in buffer.writeInteger(element) }
            case .int32Array(let value): return Self.binaryArray(value, elementType: .int4, arrayType: .int4Array, width: 4) { buffer, element in buffer.writeInteger(element) }
            case .boolArray(let value): return Self.binaryArray(value, elementType: .bool, arrayType: .boolArray, width: 1) { buffer, element in buffer.writeInteger(element ? 1 : 0, as: UInt8.self) }
            }
        }
    }
}

extension PreparedSQL {
    /// A one-dimensional array of non-null fixed-width values in PostgreSQL's binary array
    /// format, written into one buffer (PostgresNIO's `PostgresData(array:)` makes a buffer per
    /// element): dimensions, has-nulls flag, element type, then the length and lower bound of
    /// the one dimension, then each element as its length and bytes.
    static func binaryArray<Element>(
        _ elements: [Element],
        elementType: PostgresDataType,
        arrayType: PostgresDataType,
        width: Int32,
        write: (inout ByteBuffer, Element) -> Void
    ) -> PostgresData {
        var buffer = ByteBufferAllocator().buffer(capacity: 20 + elements.count * (4 + Int(width)))
        buffer.writeInteger(elements.isEmpty ? 0 : 1, as: Int32.self)
        buffer.writeInteger(0, as: Int32.self)
        buffer.writeInteger(elementType.rawValue)
        if !elements.isEmpty {
            buffer.writeInteger(Int32(elements.count))
            buffer.writeInteger(1, as: Int32.self)
            for element in elements {
                buffer.writeInteger(width)
                write(&buffer, element)
            }
        }
        return PostgresData(type: arrayType, typeModifier: nil, formatCode: .binary, value: buffer)
    }
}

// Hot statements return their values as `text`: PostgresNIO 1.33's prepared-query API
// describes result columns as text while it asks the server for binary, so a prepared
// `bool` or `int8` column cannot be decoded as such. A `text` column reads the same in both
// formats.
extension PostgresRow {
    /// The first column of a hot statement's row, a `bool` sent as text.
    func boolFromText() throws -> Bool {
        switch try decode(String.self) {
        case "true", "t": return true
        case "false", "f": return false
        case let other: throw PostgresLocksError(code: .client, message: "expected a boolean, got \(other.debugDescription)")
        }
    }

    /// The first column of a hot statement's row, an `int8` sent as text.
    func int64FromText() throws -> Int64 {
        let text = try decode(String.self)
        guard let value = Int64(text) else {
            throw PostgresLocksError(code: .client, message: "expected an integer, got \(text.debugDescription)")
        }
        return value
    }
}
