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

    /// Articles whose code is compiled elsewhere as well: Vapor and swift-otel code is in the
    /// Vapor example (built and tested by CI), since the package builds Vapor only when asked.
    static let snippetFiles: [String: [String]] = [
        "Tracing": ["Tests/DocumentationSnippets/Articles/Tracing.swift", "Examples/VaporService/Sources/VaporService/TraceExport.swift"],
        "UsingPostgresLocksWithVaporAndFluent": [
            "Examples/VaporService/Sources/VaporService/configure.swift",
            "Examples/VaporService/Sources/VaporService/DocumentController.swift",
            "Examples/VaporService/Sources/VaporService/Library.swift",
        ],
    ]

    /// Records an issue for each Swift block of `markdown` that is not in `snippetsPath` as written.
    static func checkBlocks(of markdownPath: String, areIn snippetsPath: String) throws {
        try checkBlocks(of: markdownPath, areIn: [snippetsPath])
    }

    /// Records an issue for each Swift block of `markdown` that is not in one of `snippetsPaths` as written.
    static func checkBlocks(of markdownPath: String, areIn snippetsPaths: [String]) throws {
        let markdown = try String(contentsOf: root.appendingPathComponent(markdownPath), encoding: .utf8)
        let blocks = swiftBlocks(markdown)
        guard !blocks.isEmpty else { return }
        var texts: [String] = []
        for path in snippetsPaths {
            if let text = try? String(contentsOf: root.appendingPathComponent(path), encoding: .utf8) { texts.append(text) }
        }
        guard !texts.isEmpty else {
            Issue.record("\(markdownPath) has Swift blocks and none of \(snippetsPaths) compiles them")
            return
        }
        let snippetsPath = snippetsPaths.joined(separator: " or ")
        let snippetFiles = texts.map { normalized($0.components(separatedBy: "\n")) }
        for (index, block) in blocks.enumerated() {
            let lines = normalized(block)
            let found = lines.isEmpty || snippetFiles.contains { snippets in
                (0...(max(snippets.count - lines.count, -1))).contains { start in
                    Array(snippets[start..<(start + lines.count)]) == lines
                }
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
                try Self.checkBlocks(of: "\(catalog)/\(name)", areIn: Self.snippetFiles[article] ?? ["Tests/DocumentationSnippets/Articles/\(article).swift"])
                checked += 1
            }
        }
        #expect(checked >= 10)
    }
}
