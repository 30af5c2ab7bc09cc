import Foundation

/// Formatting shared by the pages.
enum Format {
    static func seconds(_ value: Double?) -> String {
        guard let value else { return "" }
        if value < 1 { return "\(Int(value * 1000)) ms" }
        if value < 120 { return String(format: "%.1f s", value) }
        if value < 7200 { return "\(Int(value / 60)) min" }
        return String(format: "%.1f h", value / 3600)
    }

    static func time(_ date: Date?) -> String {
        guard let date else { return "" }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    static func count(_ value: Int64) -> String {
        let digits = String(value)
        var out = ""
        for (index, character) in digits.reversed().enumerated() {
            if index > 0 && index % 3 == 0 && character != "-" { out.append(",") }
            out.append(character)
        }
        return String(out.reversed())
    }
}
