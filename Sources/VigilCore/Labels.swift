/// One label: a name and a value. The metric name is the label `__name__`, as in Prometheus.
public struct Label: Hashable, Sendable, Comparable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    public static func < (lhs: Label, rhs: Label) -> Bool {
        lhs.name == rhs.name ? lhs.value < rhs.value : lhs.name < rhs.name
    }
}

/// A label set, kept sorted by name with unique names and no empty values (an empty value means
/// "no such label", as in Prometheus). The series identity of the store.
public struct Labels: Hashable, Sendable, Comparable, Sequence, CustomStringConvertible {
    public static let metricName = "__name__"

    public private(set) var pairs: [Label]

    public init() { pairs = [] }

    /// Builds a sorted set; a later duplicate name replaces an earlier one; empty values are dropped.
    public init(_ pairs: [Label]) {
        var sorted = pairs.filter { !$0.value.isEmpty }
        sorted.sort { $0.name < $1.name }
        var unique: [Label] = []
        unique.reserveCapacity(sorted.count)
        for label in sorted {
            if let last = unique.last, last.name == label.name {
                unique[unique.count - 1] = label
            } else {
                unique.append(label)
            }
        }
        self.pairs = unique
    }

    public init(name: String, _ labels: [String: String] = [:]) {
        var list = labels.map { Label($0.key, $0.value) }
        list.append(Label(Self.metricName, name))
        self.init(list)
    }

    public init(dictionary: [String: String]) {
        self.init(dictionary.map { Label($0.key, $0.value) })
    }

    public var name: String? { self[Self.metricName] }

    public subscript(name: String) -> String? {
        for label in pairs where label.name == name { return label.value }
        return nil
    }

    public var count: Int { pairs.count }
    public var isEmpty: Bool { pairs.isEmpty }

    public func makeIterator() -> IndexingIterator<[Label]> { pairs.makeIterator() }

    public var dictionary: [String: String] {
        Dictionary(pairs.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
    }

    /// The same set without `names`.
    public func removing(_ names: Set<String>) -> Labels {
        var copy = self
        copy.pairs.removeAll { names.contains($0.name) }
        return copy
    }

    /// Only the labels in `names`.
    public func keeping(_ names: Set<String>) -> Labels {
        var copy = self
        copy.pairs.removeAll { !names.contains($0.name) }
        return copy
    }

    public func removingName() -> Labels { removing([Self.metricName]) }

    public func setting(_ name: String, _ value: String) -> Labels {
        var list = pairs.filter { $0.name != name }
        list.append(Label(name, value))
        return Labels(list)
    }

    public static func < (lhs: Labels, rhs: Labels) -> Bool {
        lhs.pairs.lexicographicallyPrecedes(rhs.pairs)
    }

    /// `name{a="1", b="2"}` with Prometheus escaping of label values.
    public var description: String {
        let name = self.name ?? ""
        let rest = pairs.filter { $0.name != Self.metricName }
        if rest.isEmpty { return name.isEmpty ? "{}" : name }
        let inner = rest.map { "\($0.name)=\"\(Labels.escape($0.value))\"" }.joined(separator: ", ")
        return "\(name){\(inner)}"
    }

    /// Escapes a label value as the Prometheus text format wants: `\\`, `\"`, `\n`.
    public static func escape(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\n") }) else {
            return value
        }
        var out = ""
        out.reserveCapacity(value.utf8.count + 4)
        for ch in value {
            switch ch {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(ch)
            }
        }
        return out
    }

    /// True when `name` is a valid Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
    public static func isValidMetricName(_ name: String) -> Bool {
        isValidName(name, allowColon: true)
    }

    /// True when `name` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
    public static func isValidLabelName(_ name: String) -> Bool {
        isValidName(name, allowColon: false)
    }

    private static func isValidName(_ name: String, allowColon: Bool) -> Bool {
        guard !name.isEmpty else { return false }
        for (index, byte) in name.utf8.enumerated() {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"):
                continue
            case UInt8(ascii: "0")...UInt8(ascii: "9") where index > 0:
                continue
            case UInt8(ascii: ":") where allowColon:
                continue
            default:
                return false
            }
        }
        return true
    }
}
