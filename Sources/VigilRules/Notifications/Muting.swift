import Foundation
import VigilCore
import VigilState
import VigilStore

/// A silence in force: its matchers parsed once.
public struct ActiveSilence: Sendable {
    public let record: SilenceRecord
    public let selector: SeriesSelector

    public init(_ record: SilenceRecord) throws {
        self.record = record
        selector = try Silences.parseMatchers(record.matchers)
    }

    public func matches(_ labels: [String: String], at time: Timestamp) -> Bool {
        record.startsAt <= time && time < record.endsAt && selector.matches(Labels(dictionary: labels))
    }
}

public enum Silences {
    /// Parses `alertname="X",gpu=~"0|1"` or `{alertname="X"}`; bare `name=value` pairs need no quotes.
    public static func parseMatchers(_ text: String) throws -> SeriesSelector {
        var body = text.trimmingCharacters(in: .whitespaces)
        if body.hasPrefix("{") && body.hasSuffix("}") { body = String(body.dropFirst().dropLast()) }
        var parts: [String] = []
        for piece in splitOutsideQuotes(body) {
            let item = piece.trimmingCharacters(in: .whitespaces)
            guard !item.isEmpty else { continue }
            // alertname=Foo → alertname="Foo"
            if let range = item.range(of: #"^[A-Za-z_][A-Za-z0-9_]*(=~|!~|!=|=)"#, options: .regularExpression) {
                let value = item[range.upperBound...]
                parts.append(value.hasPrefix("\"") ? item : "\(item[range])\"\(Labels.escape(String(value)))\"")
            } else {
                throw VigilError(.invalidQuery, "\"\(item)\" is not a matcher such as alertname=\"GpuTooHot\"")
            }
        }
        guard !parts.isEmpty else { throw VigilError(.invalidQuery, "a silence needs at least one matcher, such as alertname=GpuTooHot") }
        return try SeriesSelector(parsing: "{" + parts.joined(separator: ",") + "}")
    }

    private static func splitOutsideQuotes(_ text: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        for character in text {
            if escaped { current.append(character); escaped = false; continue }
            if character == "\\" { escaped = true; current.append(character); continue }
            if character == "\"" { quoted.toggle() }
            if character == "," && !quoted { parts.append(current); current = ""; continue }
            current.append(character)
        }
        parts.append(current)
        return parts
    }
}

/// An inhibit rule with its selectors parsed.
public struct InhibitRule: Sendable {
    public let source: SeriesSelector
    public let target: SeriesSelector
    public let equal: [String]

    public init(_ configuration: InhibitRuleConfiguration) throws {
        source = try Silences.parseMatchers(configuration.source)
        target = try Silences.parseMatchers(configuration.target)
        equal = configuration.equal
    }

    /// True when `alert` is a target and some firing `sources` alert (not itself matching both sides
    /// when the target does too) has equal values for every `equal` label (a missing label equals "").
    func inhibits(_ alert: [String: String], sources: [[String: String]]) -> Bool {
        let labels = Labels(dictionary: alert)
        guard target.matches(labels) else { return false }
        let targetIsSource = source.matches(labels)
        for candidate in sources {
            let candidateLabels = Labels(dictionary: candidate)
            guard source.matches(candidateLabels) else { continue }
            if targetIsSource && target.matches(candidateLabels) { continue }
            if equal.allSatisfy({ (alert[$0] ?? "") == (candidate[$0] ?? "") }) { return true }
        }
        return false
    }
}
