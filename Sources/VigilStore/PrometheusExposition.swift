import VigilCore

/// The Prometheus text exposition format 0.0.4.
public enum PrometheusExposition {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// HELP, TYPE and one line per sample for each family; every line ends in `\n`, no trailing blanks.
    public static func render(_ families: [MetricFamily]) -> String {
        var out = ""
        out.reserveCapacity(families.reduce(0) { $0 + 80 + $1.samples.count * 64 })
        for family in families {
            appendHeader(name: family.name, kind: family.kind, help: family.help, to: &out)
            for sample in family.samples {
                appendSample(seriesText(sample.labels.setting(Labels.metricName, family.name)), sample.value, to: &out)
            }
        }
        return out
    }

    static func appendHeader(name: String, kind: MetricKind, help: String, to out: inout String) {
        if !help.isEmpty {
            out += "# HELP \(name) \(escapeHelp(help))\n"
        }
        out += "# TYPE \(name) \(kind.rawValue)\n"
    }

    static func appendSample(_ series: String, _ value: Double, to out: inout String) {
        out += series
        out += " "
        out += formatValue(value)
        out += "\n"
    }

    /// `name{label="value",…}` with label values escaped; the metric name is the `__name__` label.
    public static func seriesText(_ labels: Labels) -> String {
        var out = labels.name ?? ""
        var first = true
        for label in labels where label.name != Labels.metricName {
            out += first ? "{" : ","
            first = false
            out += label.name
            out += "=\""
            out += Labels.escape(label.value)
            out += "\""
        }
        if !first { out += "}" }
        return out
    }

    /// Go-compatible float text: integers without a fraction, `NaN`, `+Inf`, `-Inf`.
    public static func formatValue(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    static func escapeHelp(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\n") }) else { return text }
        var out = ""
        for character in text {
            switch character {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }
}

