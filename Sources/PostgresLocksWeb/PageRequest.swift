/// The request as a page handler sees it: its query and the signed-in user.
struct PageRequest {
    var query: [String: String]
    var actor: String
    var csrfToken: String
    var path: String

    /// A query value, nil when missing or empty.
    func value(_ name: String) -> String? {
        guard let value = query[name], !value.isEmpty else { return nil }
        return value
    }
}
