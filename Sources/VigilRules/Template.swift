import Foundation
import VigilCore

/// Annotation templates: text with `{{ … }}` fields. A field names a label (`{{gpu}}`), `value`,
/// `alertname`, `severity` or `labels.NAME`, optionally followed by filters:
///
/// | filter | turns | into |
/// |---|---|---|
/// | `bytes` | 1536 | `1.5 KiB` |
/// | `percent` | 0.953 (a ratio) | `95.3%` |
/// | `duration` | 5400 (seconds) | `1h30m` |
/// | `si` | 1234567 | `1.23M` |
/// | `fixed(N)` | 3.14159 | `3.14` with `fixed(2)` |
/// | `upper`, `lower` | text | its case changed |
///
/// `{{value}}` alone prints the number as Prometheus does (`91`, `0.25`). Templates are parsed when
/// the rule loads, so a misspelt filter or an unclosed field is a load error; a field naming a label
/// the alert lacks renders as empty text, as Go templates do with `$labels`.
public struct Template: Sendable, Equatable {
    enum Part: Sendable, Equatable {
        case text(String)
        case field(name: String, filters: [Filter])
    }

    enum Filter: Sendable, Equatable {
        case bytes, percent, duration, si, upper, lower
        case fixed(Int)
    }

    let parts: [Part]
    public let source: String

    public init(_ source: String) throws {
        self.source = source
        var parts: [Part] = []
        var rest = Substring(source)
        while let open = rest.range(of: "{{") {
            if open.lowerBound > rest.startIndex { parts.append(.text(String(rest[..<open.lowerBound]))) }
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                throw TemplateError("unclosed {{ in \"\(source)\"")
            }
            let body = rest[open.upperBound..<close.lowerBound]
            let pieces = body.split(separator: "|", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
            guard let name = pieces.first, !name.isEmpty else { throw TemplateError("empty {{ }} in \"\(source)\"") }
            var fieldName = name
            if fieldName.hasPrefix("$labels.") { fieldName = "labels." + fieldName.dropFirst(8) }
            if fieldName == "$value" { fieldName = "value" }
            let labelPart = fieldName.hasPrefix("labels.") ? String(fieldName.dropFirst(7)) : fieldName
            guard labelPart == "value" || Labels.isValidLabelName(labelPart) else {
                throw TemplateError("\"\(name)\" is not a label name or value in \"\(source)\"")
            }
            let filters = try pieces.dropFirst().map { try Self.filter($0, source) }
            parts.append(.field(name: fieldName, filters: filters))
            rest = rest[close.upperBound...]
        }
        if !rest.isEmpty { parts.append(.text(String(rest))) }
        self.parts = parts
    }

    private static func filter(_ text: String, _ source: String) throws -> Filter {
        switch text {
        case "bytes": return .bytes
        case "percent": return .percent
        case "duration": return .duration
        case "si", "humanize": return .si
        case "upper": return .upper
        case "lower": return .lower
        default:
            if text.hasPrefix("fixed(") && text.hasSuffix(")"), let digits = Int(text.dropFirst(6).dropLast()), (0...12).contains(digits) {
                return .fixed(digits)
            }
            throw TemplateError("unknown filter \"\(text)\" in \"\(source)\" (known: bytes, percent, duration, si, fixed(N), upper, lower)")
        }
    }

    /// The text for one alert: `labels` are the alert's labels, `value` the value of its series.
    public func render(labels: [String: String], value: Double) -> String {
        var out = ""
        for part in parts {
            switch part {
            case .text(let text): out += text
            case .field(let name, let filters):
                let key = name.hasPrefix("labels.") ? String(name.dropFirst(7)) : name
                if key == "value" && !name.hasPrefix("labels.") {
                    out += Self.apply(filters, to: .number(value))
                } else {
                    let text = labels[key] ?? ""
                    out += Self.apply(filters, to: Double(text).map { .number($0) } ?? .text(text))
                }
            }
        }
        return out
    }

    private enum Item {
        case number(Double)
        case text(String)
    }

    private static func apply(_ filters: [Filter], to item: Item) -> String {
        var current = item
        for filter in filters {
            switch (filter, current) {
            case (.bytes, .number(let v)): current = .text(Format.bytes(v))
            case (.percent, .number(let v)): current = .text(Format.fixed(v * 100, 1) + "%")
            case (.duration, .number(let v)): current = .text(Format.duration(seconds: v))
            case (.si, .number(let v)): current = .text(Format.si(v))
            case (.fixed(let n), .number(let v)): current = .text(Format.fixed(v, n))
            case (.upper, _): current = .text(text(current).uppercased())
            case (.lower, _): current = .text(text(current).lowercased())
            case (_, .text):
                break // a number filter on text leaves the text as it is
            }
        }
        return text(current)
    }

    private static func text(_ item: Item) -> String {
        switch item {
        case .number(let v): Format.number(v)
        case .text(let t): t
        }
    }
}

public struct TemplateError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Human formats shared by templates and the commands' tables.
public enum Format {
    /// A number as Prometheus prints it: integers without a fraction, others with up to 6 significant figures.
    public static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded() && abs(v) < 1e15 { return String(Int64(v)) }
        var text = String(format: "%.6g", v)
        if text.contains("e") { return text }
        if text.contains(".") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text
    }

    public static func fixed(_ v: Double, _ digits: Int) -> String {
        String(format: "%.\(digits)f", v)
    }

    /// Binary units: `512 B`, `1.5 KiB`, `12.3 GiB`.
    public static func bytes(_ v: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = v
        var unit = 0
        while abs(value) >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(number(value)) B" : "\(trimmed(value)) \(units[unit])"
    }

    /// SI prefixes: `1.23M`, `950m`.
    public static func si(_ v: Double) -> String {
        if v == 0 || !v.isFinite { return number(v) }
        let big = [(1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        for (scale, prefix) in big where abs(v) >= scale { return trimmed(v / scale) + prefix }
        if abs(v) >= 1 { return trimmed(v) }
        let small = [(1e-3, "m"), (1e-6, "µ"), (1e-9, "n")]
        for (scale, prefix) in small where abs(v) >= scale { return trimmed(v / scale) + prefix }
        return number(v)
    }

    /// `45s`, `5m`, `1h30m`, `2d3h`; below a second, `250ms`.
    public static func duration(seconds v: Double) -> String {
        // Beyond about 290 million years a duration is not worth spelling out (and would not fit an Int64).
        guard v.isFinite, abs(v) < 9e15 else { return number(v) + "s" }
        if abs(v) < 1 { return "\(Int((v * 1000).rounded()))ms" }
        var rest = Int64(v.rounded())
        let sign = rest < 0 ? "-" : ""
        rest = abs(rest)
        let parts: [(Int64, String)] = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")]
        var out = ""
        for (size, unit) in parts where rest >= size {
            out += "\(rest / size)\(unit)"
            rest %= size
        }
        return sign + out
    }

    /// Up to three significant figures, trailing zeros dropped.
    private static func trimmed(_ v: Double) -> String {
        let digits = abs(v) >= 100 ? 0 : abs(v) >= 10 ? 1 : 2
        var text = String(format: "%.\(digits)f", v)
        if text.contains(".") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text
    }
}
