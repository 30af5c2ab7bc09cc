import Foundation

/// How tags and metadata travel to and from the server: as JSON text, cast to `text[]` and
/// `jsonb` by the statements.
enum JobMetadata {
    /// Metadata as a JSON object (`""` for none).
    static func encode(_ metadata: [String: String]) -> String {
        guard !metadata.isEmpty, let data = try? JSONSerialization.data(withJSONObject: metadata, options: [.sortedKeys]) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }

    /// Tags as a JSON array (`""` for none).
    static func encodeTags(_ tags: [String]) -> String {
        guard !tags.isEmpty, let data = try? JSONSerialization.data(withJSONObject: tags) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }

    /// Metadata read back from `jsonb` text; values that are not strings are kept as their JSON text.
    static func decode(_ json: String) -> [String: String] {
        guard json != "{}", let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return [:] }
        var metadata: [String: String] = [:]
        for (key, value) in object {
            if let string = value as? String {
                metadata[key] = string
            } else if let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed]) {
                metadata[key] = String(decoding: data, as: UTF8.self)
            }
        }
        return metadata
    }
}
