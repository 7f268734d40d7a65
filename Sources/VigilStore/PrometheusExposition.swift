import VigilCore

/// The Prometheus text exposition format 0.0.4.
public enum PrometheusExposition {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// HELP, TYPE and one line per sample for each family; every line ends in `\n`, no trailing blanks.
    public static func render(_ families: [MetricFamily]) -> String {
        var out = ""
        out.reserveCapacity(families.reduce(0) { $0 + 80 + $1.samples.count * 64 })
        for family in families {
            if !family.help.isEmpty {
                out += "# HELP \(family.name) \(escapeHelp(family.help))\n"
            }
            out += "# TYPE \(family.name) \(family.kind.rawValue)\n"
            for sample in family.samples {
                out += family.name
                let labels = sample.labels.pairs.filter { $0.name != Labels.metricName }
                if !labels.isEmpty {
                    out += "{"
                    for (i, label) in labels.enumerated() {
                        if i > 0 { out += "," }
                        out += label.name
                        out += "=\""
                        out += Labels.escape(label.value)
                        out += "\""
                    }
                    out += "}"
                }
                out += " "
                out += formatValue(sample.value)
                out += "\n"
            }
        }
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
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }
}

import Foundation
