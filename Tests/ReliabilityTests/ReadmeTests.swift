import Foundation
import Testing

/// The README's code compiles as written: every Swift block of README.md appears, line for
/// line, in `Tests/ReadmeSnippets/ReadmeSnippets.swift`, a target every build compiles.
@Suite("README")
struct ReadmeTests {
    /// The package's root folder (this file is Tests/ReliabilityTests/ReadmeTests.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The Swift blocks of a Markdown text.
    static func swiftBlocks(_ markdown: String) -> [[String]] {
        var blocks: [[String]] = []
        var current: [String]?
        for line in markdown.components(separatedBy: "\n") {
            if current == nil, line.trimmingCharacters(in: .whitespaces) == "```swift" {
                current = []
            } else if current != nil, line.trimmingCharacters(in: .whitespaces) == "```" {
                blocks.append(current!)
                current = nil
            } else {
                current?.append(line)
            }
        }
        return blocks
    }

    /// Lines as compared: trimmed, without blank lines and imports (which sit at file level).
    static func normalized(_ lines: [String]) -> [String] {
        lines.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("import ") }
    }

    @Test func everySwiftBlockOfTheReadmeIsInTheCompiledSnippets() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let snippets = Self.normalized(try String(contentsOf: Self.root.appendingPathComponent("Tests/ReadmeSnippets/ReadmeSnippets.swift"), encoding: .utf8).components(separatedBy: "\n"))
        let blocks = Self.swiftBlocks(readme)
        #expect(!blocks.isEmpty)
        for (index, block) in blocks.enumerated() {
            let lines = Self.normalized(block)
            let found = lines.isEmpty || (0...(max(snippets.count - lines.count, -1))).contains { start in
                Array(snippets[start..<(start + lines.count)]) == lines
            }
            #expect(found, "README Swift block \(index + 1) is not in Tests/ReadmeSnippets/ReadmeSnippets.swift as written:\n\(block.joined(separator: "\n"))")
        }
    }
}
