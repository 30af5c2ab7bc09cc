import Foundation

/// The console's stylesheet and script, read once from the package's resources.
struct ConsoleAssets: Sendable {
    /// File name → (content type, bytes).
    let files: [String: (contentType: String, bytes: [UInt8])]

    static let shared = ConsoleAssets()

    private init() {
        var files: [String: (String, [UInt8])] = [:]
        for (name, type) in [("console.css", "text/css; charset=utf-8"), ("console.js", "text/javascript; charset=utf-8")] {
            let parts = name.split(separator: ".")
            if let url = Bundle.module.url(forResource: String(parts[0]), withExtension: String(parts[1]), subdirectory: "Assets")
                ?? Bundle.module.url(forResource: String(parts[0]), withExtension: String(parts[1])),
               let data = try? Data(contentsOf: url) {
                files[name] = (type, [UInt8](data))
            }
        }
        self.files = files
    }
}
