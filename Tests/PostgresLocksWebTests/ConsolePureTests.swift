import Foundation
import HTTPTypes
import PostgresLocks
@testable import PostgresLocksWeb
import Testing

/// The console's pure parts, without a server.
@Suite("Web console, pure")
struct ConsolePureTests {
    @Test func interpolatedTextIsEscapedAndOnlyHTMLValuesAreInsertedAsTheyAre() {
        let text = "<script>alert('x')</script> & \"quotes\"\u{1B}[2J"
        let inner: HTML = "<b>\(text)</b>"
        let outer: HTML = "<p>\(inner)</p>"
        #expect(outer.markup == "<p><b>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quotes&quot;\u{FFFD}[2J</b></p>")
    }

    @Test func eachErrorCodeAnswersWithItsHTTPStatus() {
        let statuses = [WebConsoleError.Code.notFound, .forbidden, .badRequest, .invalidConfiguration].map { WebConsoleError(code: $0, message: "m").status }
        #expect(statuses == [.notFound, .forbidden, .badRequest, .badRequest])
        #expect(WebConsoleError(code: .forbidden, message: "no token").description == "forbidden: no token")
    }

    @Test func aFormIsDecodedAndItsReturnPathStaysInsideTheConsole() {
        let form = ActionForm(urlEncoded: "csrf=a%2Bb%3D&confirm=yes&back=%2Fops%2Fjobs%3Fstate%3Ddead&note=two+words&csrf=second")
        #expect(form["csrf"] == "a+b=")
        #expect(form["note"] == "two words")
        #expect(form.back(within: "/ops", default: "/ops/locks") == "/ops/jobs?state=dead")
        for back in ["https://evil.example/", "//evil.example/ops", "/elsewhere", "/ops\\@evil", "javascript:alert(1)"] {
            #expect(ActionForm(fields: ["back": back]).back(within: "/ops", default: "/ops/locks") == "/ops/locks", "\(back) is not followed")
        }
        #expect(ActionForm(fields: ["back": "/jobs/1"]).back(within: "", default: "/locks") == "/jobs/1")
    }

    @Test func theGraphPlacesEachSessionOnceWithDashedArrowsToThoseAheadInTheQueue() {
        let trees = BlockingTree.build(blockedBy: [10: [], 11: [10], 12: [10, 11], 13: [12]])
        let graph = BlockingGraph(trees: trees)
        #expect(graph.boxes.map(\.pid) == [10, 11, 12, 13])
        #expect(graph.boxes.map(\.column) == [0, 1, 1, 2])
        #expect(graph.boxes.filter(\.isRoot).map(\.pid) == [10])
        #expect(graph.edges.contains(.init(from: 12, to: 10, isParent: true)))
        #expect(graph.edges.contains(.init(from: 12, to: 11, isParent: false)))
        #expect(graph.edges.contains(.init(from: 13, to: 12, isParent: true)))
        let svg = graph.svg { "app <\($0)>" }.markup
        #expect(svg.contains("app &lt;10&gt;") && !svg.contains("app <10>"))
        let limited = BlockingGraph(trees: trees, limit: 2)
        #expect(limited.boxes.count == 2 && limited.omitted == 2)
    }

    @Test func aChartScalesToItsMaximumAndDrawsNothingForMissingMinutes() {
        let chart = MinuteChart(title: "Pickup", unit: "s", style: .line, series: [.init(name: "mean", cssClass: "line", values: [nil, 2, 4, nil])])
        #expect(chart.maximum == 4)
        let svg = chart.svg().markup
        #expect(svg.contains("<polyline class=\"line\""))
        #expect(svg.components(separatedBy: ",").count - 1 == 2, "two points")
        #expect(svg.contains(">4 s<"))
        let empty = MinuteChart(title: "Throughput", unit: "", style: .bars, series: [.init(name: "completed", cssClass: "ok", values: [0, 0])])
        #expect(empty.maximum == 1 && !empty.svg().markup.contains("<rect"))
    }

    @Test func signInComesFromTheEnvironmentAndIsCheckedExactly() throws {
        #expect(try WebConsoleAuthentication.fromEnvironment([:]) == .none)
        #expect(try WebConsoleAuthentication.fromEnvironment(["PGLOCK_WEB_TOKEN": "t"]) == .token("t"))
        #expect(try WebConsoleAuthentication.fromEnvironment(["PGLOCK_WEB_USER": "u", "PGLOCK_WEB_PASSWORD": "p"]) == .basic(username: "u", password: "p"))
        #expect(throws: WebConsoleError.self) { try WebConsoleAuthentication.fromEnvironment(["PGLOCK_WEB_USER": "u"]) }
        #expect(try WebConsoleAuthentication.fromEnvironment(["PGLOCK_WEB_TOKEN": "", "PGLOCK_WEB_USER": ""]) == .none)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("pglock-token-\(UUID().uuidString)")
        try "from-file\nignored\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(try WebConsoleAuthentication.fromEnvironment(["PGLOCK_WEB_TOKEN_FILE": file.path]) == .token("from-file"))

        let token = WebConsoleAuthentication.token("secret")
        #expect(token.actor(authorization: "Bearer secret") == "token")
        #expect(token.actor(authorization: "Bearer secret2") == nil)
        #expect(token.actor(authorization: "Basic " + Data("x:secret".utf8).base64EncodedString()) == "token")
        #expect(token.actor(authorization: nil) == nil)
        #expect(WebConsoleAuthentication.none.actor(authorization: nil) == "local")
    }

    @Test func aMountPathMustBeAPlainPath() throws {
        for bad in ["ops", "/ops/../x", "/o ps", "/ops//x", "/<script>"] {
            #expect(throws: WebConsoleError.self, "\(bad)") { try WebConsole.validateMountPath(bad) }
        }
        #expect(try WebConsole.validateMountPath("/ops/") == "/ops")
        #expect(try WebConsole.validateMountPath("") == "")
    }
}
