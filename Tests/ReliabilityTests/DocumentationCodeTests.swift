import Foundation
import Testing

/// The documentation's code compiles as written: every Swift block of README.md appears, line
/// for line, in `Tests/DocumentationSnippets/ReadmeSnippets.swift`, and every Swift block of a
/// DocC article `X.md` in `Tests/DocumentationSnippets/Articles/X.swift`: a target every build
/// compiles.
@Suite("Documentation code")
struct DocumentationCodeTests {
    /// The package's root folder (this file is Tests/ReliabilityTests/DocumentationCodeTests.swift).
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

    /// Records an issue for each Swift block of `markdown` that is not in `snippetsPath` as written.
    static func checkBlocks(of markdownPath: String, areIn snippetsPath: String) throws {
        let markdown = try String(contentsOf: root.appendingPathComponent(markdownPath), encoding: .utf8)
        let snippetFile = root.appendingPathComponent(snippetsPath)
        let blocks = swiftBlocks(markdown)
        guard !blocks.isEmpty else { return }
        guard let text = try? String(contentsOf: snippetFile, encoding: .utf8) else {
            Issue.record("\(markdownPath) has Swift blocks and no \(snippetsPath) compiles them")
            return
        }
        let snippets = normalized(text.components(separatedBy: "\n"))
        for (index, block) in blocks.enumerated() {
            let lines = normalized(block)
            let found = lines.isEmpty || (0...(max(snippets.count - lines.count, -1))).contains { start in
                Array(snippets[start..<(start + lines.count)]) == lines
            }
            #expect(found, "\(markdownPath): Swift block \(index + 1) is not in \(snippetsPath) as written:\n\(block.joined(separator: "\n"))")
        }
    }

    @Test func everySwiftBlockOfTheReadmeIsInTheCompiledSnippets() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(!Self.swiftBlocks(readme).isEmpty)
        try Self.checkBlocks(of: "README.md", areIn: "Tests/DocumentationSnippets/ReadmeSnippets.swift")
    }

    @Test func everySwiftBlockOfEveryDocCArticleIsInTheCompiledSnippets() throws {
        let files = FileManager.default
        var checked = 0
        for catalog in ["Sources/PostgresLocks/Documentation.docc", "Sources/PostgresQueue/Documentation.docc"] {
            for name in try files.contentsOfDirectory(atPath: Self.root.appendingPathComponent(catalog).path).sorted() where name.hasSuffix(".md") {
                let article = String(name.dropLast(3))
                try Self.checkBlocks(of: "\(catalog)/\(name)", areIn: "Tests/DocumentationSnippets/Articles/\(article).swift")
                checked += 1
            }
        }
        #expect(checked >= 10)
    }
}
