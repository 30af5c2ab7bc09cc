import Foundation

/// The `pglock` executable built next to the running test bundle (the test binary may sit
/// inside a bundle folder, `….xctest/...`).
public func pglockExecutable() throws -> String {
    let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var folder = executable.deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = folder.appendingPathComponent("pglock").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        folder = folder.deletingLastPathComponent()
    }
    throw TestFailure("the pglock executable was not found next to \(executable.path); run `swift build` first")
}
