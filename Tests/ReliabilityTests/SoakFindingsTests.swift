import Foundation
import PglockHarness
import Testing

/// The soak's findings go through one table of counts: every stored count must be in it, or a
/// broken invariant would be neither reported nor summed. No database.
@Suite("Soak findings")
struct SoakFindingsTests {
    /// The names of every stored count, read from the type itself.
    static let countNames = Mirror(reflecting: SoakFindings()).children.compactMap(\.label)

    /// Findings with every count set to `value`, made through `Codable` so that no count is named here.
    static func findings(allCountsAt value: Int) throws -> SoakFindings {
        let json = Dictionary(uniqueKeysWithValues: countNames.map { ($0, value) })
        return try JSONDecoder().decode(SoakFindings.self, from: JSONEncoder().encode(json))
    }

    @Test func everyCountIsReportedAsAViolationAndSummedByAdd() throws {
        #expect(Self.countNames.count >= 14)
        var findings = try Self.findings(allCountsAt: 1)
        #expect(!findings.isClean)
        #expect(findings.violations.count == Self.countNames.count, "\(findings.violations)")
        findings.add(try Self.findings(allCountsAt: 2))
        let summed = try JSONDecoder().decode([String: Int].self, from: JSONEncoder().encode(findings))
        #expect(summed == Dictionary(uniqueKeysWithValues: Self.countNames.map { ($0, 3) }))
        #expect(SoakFindings().violations.isEmpty && SoakFindings().isClean)
    }
}
