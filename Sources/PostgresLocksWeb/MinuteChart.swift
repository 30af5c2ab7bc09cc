/// A small SVG chart of one value per minute over the last hour: bars or a line, with its
/// maximum written on the axis. Pure: no I/O.
struct MinuteChart {
    enum Style { case bars, line }

    struct Series {
        var name: String
        var cssClass: String
        var values: [Double?]
    }

    var title: String
    var unit: String
    var style: Style
    var series: [Series]

    static let width = 360, height = 120, left = 44, bottom = 18

    var maximum: Double {
        let top = series.flatMap { $0.values.compactMap { $0 } }.max() ?? 0
        return top > 0 ? top : 1
    }

    func svg() -> HTML {
        let count = max(1, series.map(\.values.count).max() ?? 1)
        let plotWidth = Double(Self.width - Self.left - 4), plotHeight = Double(Self.height - Self.bottom - 6)
        let step = plotWidth / Double(count)
        let top = maximum
        func y(_ value: Double) -> Double { 4 + plotHeight - plotHeight * value / top }
        var parts: [HTML] = []
        switch style {
        case .bars:
            // Stacked bars, the series in order from the bottom.
            for index in 0..<count {
                var base = 0.0
                for serie in series {
                    guard index < serie.values.count, let value = serie.values[index], value > 0 else { continue }
                    let x = Double(Self.left) + Double(index) * step
                    let y1 = y(base + value), y0 = y(base)
                    parts.append("<rect class=\"\(serie.cssClass)\" x=\"\(fixed(x))\" y=\"\(fixed(y1))\" width=\"\(fixed(max(step - 1, 1)))\" height=\"\(fixed(max(y0 - y1, 0.5)))\"><title>\(serie.name): \(fixed(value))</title></rect>")
                    base += value
                }
            }
        case .line:
            for serie in series {
                var points: [String] = []
                for (index, value) in serie.values.enumerated() {
                    guard let value else { continue }
                    points.append("\(fixed(Double(Self.left) + (Double(index) + 0.5) * step)),\(fixed(y(value)))")
                }
                if !points.isEmpty { parts.append("<polyline class=\"\(serie.cssClass)\" points=\"\(points.joined(separator: " "))\"/>") }
            }
        }
        let legend = HTML.joined(series.map { "<span class=\"key \($0.cssClass)\">\($0.name)</span>" }, separator: " ")
        return """
            <figure class="chart"><figcaption>\(title) \(legend)</figcaption>\
            <svg width="\(Self.width)" height="\(Self.height)" viewBox="0 0 \(Self.width) \(Self.height)" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="\(title)">\
            <line class="axis" x1="\(Self.left)" y1="4" x2="\(Self.left)" y2="\(Self.height - Self.bottom + 2)"/>\
            <line class="axis" x1="\(Self.left)" y1="\(Self.height - Self.bottom + 2)" x2="\(Self.width - 4)" y2="\(Self.height - Self.bottom + 2)"/>\
            <text class="tick" x="\(Self.left - 4)" y="12" text-anchor="end">\(label(top))</text>\
            <text class="tick" x="\(Self.left - 4)" y="\(Self.height - Self.bottom + 2)" text-anchor="end">0</text>\
            <text class="tick" x="\(Self.left)" y="\(Self.height - 3)">−60 min</text>\
            <text class="tick" x="\(Self.width - 4)" y="\(Self.height - 3)" text-anchor="end">now</text>\
            \(parts)</svg></figure>
            """
    }

    func label(_ value: Double) -> String {
        let number = value >= 100 ? String(Int(value.rounded())) : fixed(value)
        return unit.isEmpty ? number : "\(number) \(unit)"
    }

    func fixed(_ value: Double) -> String {
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }
}
