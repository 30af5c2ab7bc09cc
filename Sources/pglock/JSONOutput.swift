import Foundation

/// Prints `value` on standard output as pretty JSON with sorted keys (dates in ISO 8601), the
/// form of every command's `--json`.
func printJSON<Value: Encodable>(_ value: Value) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
