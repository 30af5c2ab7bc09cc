/// A reference to one element of the page a ``HeadlessBrowser`` shows, as WebDriver names it.
///
/// It stays valid while the element is in the page; after a navigation or once the element is
/// removed, commands on it fail with ``BrowserTestingError/Code/webDriver`` ("stale element
/// reference"). Pass it in `arguments` of ``HeadlessBrowser/execute(_:arguments:)`` to get the
/// element in the script (`arguments[0]`).
public struct Element: Sendable, Hashable, Encodable, CustomStringConvertible {
    /// The key WebDriver uses for element references in JSON (W3C WebDriver, "web element identifier").
    public static let webDriverKey = "element-6066-11e4-a52e-4f735466cecf"

    /// WebDriver's identifier of the element.
    public let id: String
    /// The CSS selector the element was found with (for messages).
    public let selector: String

    /// Creates a reference from WebDriver's identifier and the selector it was found with.
    public init(id: String, selector: String) {
        self.id = id
        self.selector = selector
    }

    /// Encodes as WebDriver expects an element in script arguments: `{"element-6066-…": id}`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(id, forKey: Key(stringValue: Self.webDriverKey))
    }

    /// `element <id> (<selector>)`.
    public var description: String { "element \(id) (\(selector))" }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
