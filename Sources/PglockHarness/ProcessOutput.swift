import Foundation
import Subprocess

/// Reads a child process's standard output up to its first newline (the line itself, without
/// it): how `pglock` and its tests wait for a helper process to say it is ready.
package func firstLine(of output: SubprocessOutputSequence) async throws -> String {
    var line = Data()
    for try await chunk in output {
        for byte in chunk.withUnsafeBytes({ Array($0) }) {
            if byte == 0x0A { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
    }
    return String(decoding: line, as: UTF8.self)
}
