import Foundation

/// A form posted to an action, `application/x-www-form-urlencoded`. Pure.
struct ActionForm: Equatable {
    var fields: [String: String] = [:]

    init(fields: [String: String]) { self.fields = fields }

    /// Parses the body of a posted form (`+` as space, `%XX` decoded; bad escapes kept as they are).
    init(urlEncoded body: String) {
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = Self.decode(parts[0]), value = parts.count > 1 ? Self.decode(parts[1]) : ""
            if fields[name] == nil { fields[name] = value }
        }
    }

    static func decode(_ text: Substring) -> String {
        let replaced = text.replacingOccurrences(of: "+", with: " ")
        return replaced.removingPercentEncoding ?? replaced
    }

    subscript(_ name: String) -> String? { fields[name] }

    /// The page to return to: a path inside the console only (never another site).
    func back(within mountPath: String, default fallback: String) -> String {
        guard let back = fields["back"], back.hasPrefix(mountPath.isEmpty ? "/" : mountPath + "/"), !back.hasPrefix("//"),
              !back.contains("\\"), back.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F })
        else { return fallback }
        return back
    }
}
