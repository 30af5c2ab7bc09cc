/// One row of `COPY … FROM STDIN` in PostgreSQL's text format: values separated by tabs, the
/// row ended by a newline, backslash, tab, newline and carriage return escaped, `\N` for NULL.
struct CopyTextRow {
    private(set) var text = ""

    /// Appends a field.
    mutating func append(_ value: String?) {
        if !text.isEmpty, text.last != "\n" { text.append("\t") }
        guard let value else { text.append("\\N"); return }
        Self.escape(value, into: &text)
    }

    /// Appends an array field (`text[]`), its elements quoted.
    mutating func appendArray(_ values: [String]) {
        var literal = "{"
        for (index, value) in values.enumerated() {
            if index > 0 { literal.append(",") }
            literal.append("\"")
            for character in value.unicodeScalars {
                if character == "\"" || character == "\\" { literal.append("\\") }
                literal.unicodeScalars.append(character)
            }
            literal.append("\"")
        }
        literal.append("}")
        append(literal)
    }

    /// Ends the row.
    mutating func endRow() { text.append("\n") }

    static func escape(_ value: String, into text: inout String) {
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\\": text.append("\\\\")
            case "\t": text.append("\\t")
            case "\n": text.append("\\n")
            case "\r": text.append("\\r")
            default: text.unicodeScalars.append(scalar)
            }
        }
    }
}
