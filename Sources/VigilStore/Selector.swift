import Foundation
import VigilCore

/// One label matcher: `=`, `!=`, `=~`, `!~` (regular expressions are fully anchored, as in Prometheus).
public struct LabelMatcher: Sendable, Hashable, CustomStringConvertible {
    public enum Operation: String, Sendable, Hashable {
        case equal = "="
        case notEqual = "!="
        case matchesRegex = "=~"
        case notMatchesRegex = "!~"
    }

    public let name: String
    public let operation: Operation
    public let value: String
    private let regex: AnchoredRegex?

    public init(_ name: String, _ operation: Operation, _ value: String) throws {
        self.name = name
        self.operation = operation
        self.value = value
        switch operation {
        case .equal, .notEqual: regex = nil
        case .matchesRegex, .notMatchesRegex: regex = try AnchoredRegex(value)
        }
    }

    /// Whether a label value (empty when the label is absent) matches.
    public func matches(_ labelValue: String) -> Bool {
        switch operation {
        case .equal: labelValue == value
        case .notEqual: labelValue != value
        case .matchesRegex: regex!.matches(labelValue)
        case .notMatchesRegex: !regex!.matches(labelValue)
        }
    }

    public var description: String { "\(name)\(operation.rawValue)\"\(Labels.escape(value))\"" }

    public static func == (lhs: LabelMatcher, rhs: LabelMatcher) -> Bool {
        lhs.name == rhs.name && lhs.operation == rhs.operation && lhs.value == rhs.value
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(operation)
        hasher.combine(value)
    }
}

/// A compiled regular expression that must match the whole string, in time linear in the text (RE2's
/// guarantee, which Prometheus relies on): a request's matcher can never pin a core.
struct AnchoredRegex: Sendable {
    private let regex: LinearRegex?
    private let literal: String?

    init(_ pattern: String) throws {
        let special = CharacterSet(charactersIn: "\\^$.|?*+()[]{}")
        if pattern.unicodeScalars.allSatisfy({ !special.contains($0) }) {
            literal = pattern
            regex = nil
        } else {
            literal = nil
            regex = try LinearRegex(pattern)
        }
    }

    func matches(_ text: String) -> Bool {
        if let literal { return text == literal }
        return regex!.wholeMatch(text)
    }
}

/// A series selector: `name`, `name{label="v", other=~"a|b"}` or `{__name__=~"node_.*"}`.
public struct SeriesSelector: Sendable, Hashable, CustomStringConvertible {
    public var matchers: [LabelMatcher]

    public init(matchers: [LabelMatcher]) {
        self.matchers = matchers
    }

    public init(name: String, _ matchers: [LabelMatcher] = []) {
        // Equal matchers on valid names never fail to build.
        self.matchers = [try! LabelMatcher(Labels.metricName, .equal, name)] + matchers
    }

    /// The exact metric name when the selector names one (fast path through the name index).
    public var metricName: String? {
        matchers.first { $0.name == Labels.metricName && $0.operation == .equal }?.value
    }

    public func matches(_ labels: Labels) -> Bool {
        matchers.allSatisfy { $0.matches(labels[$0.name] ?? "") }
    }

    public var description: String {
        let others = matchers.filter { !($0.name == Labels.metricName && $0.operation == .equal) }
        let name = metricName ?? ""
        return others.isEmpty ? name : "\(name){\(others.map(\.description).joined(separator: ", "))}"
    }

    /// Parses PromQL's selector syntax.
    public init(parsing text: String) throws {
        var scanner = SelectorScanner(text)
        var matchers: [LabelMatcher] = []
        scanner.skipSpaces()
        let name = scanner.identifier(allowColon: true)
        if !name.isEmpty {
            matchers.append(try LabelMatcher(Labels.metricName, .equal, name))
        }
        scanner.skipSpaces()
        if scanner.consume("{") {
            scanner.skipSpaces()
            while !scanner.consume("}") {
                let label = scanner.identifier(allowColon: false)
                guard !label.isEmpty else { throw scanner.error("expected a label name") }
                scanner.skipSpaces()
                let operation: LabelMatcher.Operation
                if scanner.consume("=~") { operation = .matchesRegex }
                else if scanner.consume("!~") { operation = .notMatchesRegex }
                else if scanner.consume("!=") { operation = .notEqual }
                else if scanner.consume("=") { operation = .equal }
                else { throw scanner.error("expected =, !=, =~ or !~ after \(label)") }
                scanner.skipSpaces()
                let value = try scanner.quoted()
                matchers.append(try LabelMatcher(label, operation, value))
                scanner.skipSpaces()
                if scanner.consume(",") { scanner.skipSpaces(); continue }
                guard scanner.peek == "}" else { throw scanner.error("expected , or }") }
            }
        }
        scanner.skipSpaces()
        guard scanner.atEnd else { throw scanner.error("unexpected text") }
        guard !matchers.isEmpty else {
            throw VigilError(.invalidQuery, "selector \"\(text)\" names no metric and has no matcher")
        }
        guard matchers.contains(where: { !$0.matches("") }) else {
            throw VigilError(.invalidQuery, "selector \"\(text)\" needs at least one matcher that does not match empty labels")
        }
        self.matchers = matchers
    }
}

private struct SelectorScanner {
    let text: String
    let scalars: [Unicode.Scalar]
    var index = 0

    init(_ text: String) {
        self.text = text
        scalars = Array(text.unicodeScalars)
    }

    var atEnd: Bool { index >= scalars.count }
    var peek: Unicode.Scalar? { atEnd ? nil : scalars[index] }

    mutating func skipSpaces() {
        while let c = peek, c == " " || c == "\t" || c == "\n" { index += 1 }
    }

    mutating func consume(_ token: String) -> Bool {
        let tokenScalars = Array(token.unicodeScalars)
        guard index + tokenScalars.count <= scalars.count,
              Array(scalars[index..<index + tokenScalars.count]) == tokenScalars else { return false }
        index += tokenScalars.count
        return true
    }

    mutating func identifier(allowColon: Bool) -> String {
        var out = String.UnicodeScalarView()
        while let c = peek, c.isASCII,
              c.properties.isAlphabetic || c == "_" || (allowColon && c == ":") || (!out.isEmpty && ("0"..."9").contains(c)) {
            out.append(c)
            index += 1
        }
        return String(out)
    }

    mutating func quoted() throws -> String {
        guard let quote = peek, quote == "\"" || quote == "'" || quote == "`" else { throw error("expected a quoted value") }
        index += 1
        var out = String.UnicodeScalarView()
        while let c = peek {
            index += 1
            if c == quote { return String(out) }
            if c == "\\" && quote != "`", let next = peek {
                index += 1
                switch next {
                case "n": out.append("\n")
                case "t": out.append("\t")
                default: out.append(next)
                }
            } else {
                out.append(c)
            }
        }
        throw error("unterminated string")
    }

    func error(_ message: String) -> VigilError {
        VigilError(.invalidQuery, "\(message) at position \(index + 1) of selector \"\(text)\"")
    }
}
