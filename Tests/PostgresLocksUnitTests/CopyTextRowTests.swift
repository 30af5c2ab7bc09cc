import Testing

@testable import PostgresQueue

@Suite struct CopyTextRowTests {
    @Test func fieldsAreTabSeparatedAndSpecialCharactersEscaped() {
        var row = CopyTextRow()
        row.append("a\tb")
        row.append("line\nbreak\r")
        row.append(#"back\slash"#)
        row.append(nil)
        row.endRow()
        #expect(row.text == "a\\tb\tline\\nbreak\\r\tback\\\\slash\t\\N\n")
    }

    @Test func arraysQuoteEveryElementAndEscapeQuotesAndBackslashes() {
        var row = CopyTextRow()
        row.appendArray(["plain", #"say "hi""#, #"a\b"#, "x,y"])
        row.appendArray([])
        row.endRow()
        // The array literal's own backslashes are escaped once more for COPY.
        #expect(row.text == #"{"plain","say \\"hi\\"","a\\\\b","x,y"}"# + "\t{}\n")
    }
}
