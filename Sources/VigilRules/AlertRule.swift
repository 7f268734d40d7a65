import Foundation
import VigilCore
import VigilLua

/// What a rule does when its query returns nothing, or when its evaluation fails.
public enum MissingBehaviour: String, Sendable, CaseIterable {
    /// Instances keep their state and timers, as if the evaluation had not happened.
    case keep
    /// Every instance is treated as absent: pending ones go, firing ones resolve (after `keep`).
    case resolve
    /// One instance labelled `reason="no data"` (or `"evaluation error"`) goes through pending and fires.
    case fire
}

/// Flapping detection (Nagios/Kapacitor): the weighted share of state changes over the last
/// `history` evaluations; above `high` the instance is flapping, below `low` it is stable again.
public struct FlappingSettings: Sendable, Equatable {
    public var low: Double = 0.25
    public var high: Double = 0.5
    public var history: Int = 21
}

/// Severity levels, ordered as Kapacitor orders them. Level 0 is OK.
public enum SeverityLevel {
    public static let names = ["info", "warning", "critical"]

    public static func index(_ name: String) -> Int? { names.firstIndex(of: name).map { $0 + 1 } }
}

/// One level's conditions: `fire` enters (or stays at) it; `clear`, when given, must hold before it is left.
struct LevelConditions {
    var level: Int
    var severity: String
    var fire: LuaReference?
    var clear: LuaReference?
}

/// How a rule reads its input.
enum RuleQuery {
    /// `query = "selector"`: the newest value of each matching series, computed in Swift.
    case selector(String)
    /// `query = function(q) … end`: whatever the function returns (a vector, a number or nil).
    case function(LuaReference)
    /// Vigil's own alerts, whose instances the engine computes.
    case builtin
}

/// An alert rule as a script declared it with `vigil.alert "Name" { … }`.
final class AlertRuleDefinition {
    let name: String
    let file: String
    let group: String
    let interval: Int64
    let query: RuleQuery
    /// Ascending by level; one entry for a rule with a single `fire`.
    let levels: [LevelConditions]
    /// True when the rule has no `fire`: every element the query returns is active at `levels[0]`.
    let firesOnPresence: Bool
    let pending: Int64
    let keep: Int64
    let labels: [(String, Template)]
    let annotations: [(String, Template)]
    let flapping: FlappingSettings?
    let noData: MissingBehaviour
    let onError: MissingBehaviour

    static let fields: Set<String> = [
        "every", "query", "fire", "clear", "pending", "keep", "severity", "labels", "summary", "description",
        "annotations", "flapping", "no_data", "on_error",
    ]

    init(name: String, file: String, group: String, defaultInterval: Int64, spec: [LuaValue: LuaValue]) throws {
        self.name = name
        self.file = file
        self.group = group
        func fail(_ message: String) -> RuleDeclarationError { RuleDeclarationError("vigil.alert \"\(name)\": \(message)") }
        try Declaration.checkFields(spec, Self.fields, fail)
        interval = try Declaration.duration(spec, "every", default: defaultInterval, fail)
        guard interval > 0 else { throw fail("every must be longer than 0") }
        pending = try Declaration.duration(spec, "pending", default: 0, fail)
        keep = try Declaration.duration(spec, "keep", default: 0, fail)
        query = try Declaration.query(spec, fail)

        let severityValue = spec[.string("severity")] ?? .nil
        if !severityValue.isNil && severityValue.stringValue == nil { throw fail("severity must be a string") }
        let severity = severityValue.stringValue ?? "warning"
        let fire = spec[.string("fire")] ?? .nil
        let clear = spec[.string("clear")] ?? .nil
        switch fire {
        case .nil:
            guard clear.isNil else { throw fail("clear needs a fire condition") }
            levels = [LevelConditions(level: 1, severity: severity, fire: nil, clear: nil)]
            firesOnPresence = true
        case .function(let function):
            guard case .function(let clearFunction) = clear else {
                guard clear.isNil else { throw fail("with fire = function, clear must be a function too") }
                levels = [LevelConditions(level: 1, severity: severity, fire: function, clear: nil)]
                firesOnPresence = false
                break
            }
            levels = [LevelConditions(level: 1, severity: severity, fire: function, clear: clearFunction)]
            firesOnPresence = false
        case .table(let table):
            guard severityValue.isNil else { throw fail("severity comes from fire's keys when fire is a table; drop severity") }
            let clears = clear.isNil ? [:] : (clear.tableValue ?? [:])
            if !clear.isNil && clear.tableValue == nil { throw fail("with fire = { level = function }, clear must be such a table too") }
            var found: [LevelConditions] = []
            for (key, value) in table {
                guard let levelName = key.stringValue, let level = SeverityLevel.index(levelName) else {
                    throw fail("fire's keys are levels: \(SeverityLevel.names.joined(separator: ", ")); got \(LuaFormat.describe(key))")
                }
                guard case .function(let function) = value else { throw fail("fire.\(levelName) must be a function") }
                var conditions = LevelConditions(level: level, severity: levelName, fire: function, clear: nil)
                if let reset = clears[key] {
                    guard case .function(let resetFunction) = reset else { throw fail("clear.\(levelName) must be a function") }
                    conditions.clear = resetFunction
                }
                found.append(conditions)
            }
            for key in clears.keys where table[key] == nil {
                throw fail("clear.\(LuaFormat.describe(key)) has no fire condition at that level")
            }
            guard !found.isEmpty else { throw fail("fire has no levels") }
            levels = found.sorted { $0.level < $1.level }
            firesOnPresence = false
        default:
            throw fail("fire must be a function(s) or a table of them by level")
        }

        func templates(_ table: [LuaValue: LuaValue], _ field: String) throws -> [(String, Template)] {
            var out: [(String, Template)] = []
            for (key, value) in table {
                guard let name = key.stringValue, Labels.isValidLabelName(name) else { throw fail("\(field) keys must be label-like names") }
                guard let text = value.stringValue ?? value.doubleValue.map({ Format.number($0) }) else {
                    throw fail("\(field).\(name) must be a string")
                }
                do {
                    out.append((name, try Template(text)))
                } catch {
                    throw fail("\(field).\(name): \(error)")
                }
            }
            return out.sorted { $0.0 < $1.0 }
        }
        let labelsValue = spec[.string("labels")] ?? .nil
        guard labelsValue.isNil || labelsValue.tableValue != nil || labelsValue.arrayValue?.isEmpty == true else { throw fail("labels must be a table") }
        var labels = try templates(labelsValue.tableValue ?? [:], "labels")
        if labels.contains(where: { $0.0 == "alertname" || $0.0 == "severity" }) {
            throw fail("labels may not set alertname or severity (use severity = …)")
        }
        labels.removeAll { $0.0 == Labels.metricName }
        self.labels = labels
        let annotationsValue = spec[.string("annotations")] ?? .nil
        guard annotationsValue.isNil || annotationsValue.tableValue != nil else { throw fail("annotations must be a table") }
        var annotations = try templates(annotationsValue.tableValue ?? [:], "annotations")
        for field in ["summary", "description"] {
            let value = spec[.string(field)] ?? .nil
            guard !value.isNil else { continue }
            guard let text = value.stringValue else { throw fail("\(field) must be a string") }
            do {
                annotations.append((field, try Template(text)))
            } catch {
                throw fail("\(field): \(error)")
            }
        }
        self.annotations = annotations.sorted { $0.0 < $1.0 }

        switch spec[.string("flapping")] ?? .nil {
        case .nil, .boolean(false): flapping = nil
        case .boolean(true): flapping = FlappingSettings()
        case .table(let table):
            var settings = FlappingSettings()
            for (key, value) in table {
                switch key.stringValue {
                case "low": settings.low = try Self.ratio(value) ?? { throw fail("flapping.low must be a number between 0 and 1") }()
                case "high": settings.high = try Self.ratio(value) ?? { throw fail("flapping.high must be a number between 0 and 1") }()
                case "history":
                    guard let n = value.intValue, n >= 2, n <= 1000 else { throw fail("flapping.history must be a whole number from 2 to 1000") }
                    settings.history = Int(n)
                default: throw fail("unknown field '\(LuaFormat.describe(key))' in flapping (known: low, high, history)")
                }
            }
            guard settings.low <= settings.high else { throw fail("flapping.low must not exceed flapping.high") }
            flapping = settings
        default: throw fail("flapping must be true or { low = 0.25, high = 0.5, history = 21 }")
        }

        func behaviour(_ field: String, default value: MissingBehaviour) throws -> MissingBehaviour {
            let raw = spec[.string(field)] ?? .nil
            if raw.isNil { return value }
            guard let text = raw.stringValue, let parsed = MissingBehaviour(rawValue: text) else {
                throw fail("\(field) must be \"keep\", \"resolve\" or \"fire\", got \(LuaFormat.describe(raw))")
            }
            return parsed
        }
        noData = try behaviour("no_data", default: .resolve)
        onError = try behaviour("on_error", default: .keep)

    }

    /// One of Vigil's own alerts (`VigilRuleFailing`): fires at once, severity critical.
    init(builtin name: String, summary: String, description: String) {
        self.name = name
        file = ""
        group = "vigil"
        interval = 1000
        query = .builtin
        levels = [LevelConditions(level: 1, severity: "critical", fire: nil, clear: nil)]
        firesOnPresence = true
        pending = 0
        keep = 0
        labels = []
        annotations = [("description", try! Template(description)), ("summary", try! Template(summary))]
        flapping = nil
        noData = .resolve
        onError = .keep
    }

    private static func ratio(_ value: LuaValue) throws -> Double? {
        guard let number = value.doubleValue, number >= 0, number <= 1 else { return nil }
        return number
    }
}

/// The fields `vigil.alert` and `vigil.recommend` share, read the same way.
enum Declaration {
    /// Every key is a known field's name.
    static func checkFields(_ spec: [LuaValue: LuaValue], _ known: Set<String>, _ fail: (String) -> RuleDeclarationError) throws {
        for key in spec.keys {
            guard let field = key.stringValue else { throw fail("fields are named, found a \(LuaFormat.describe(key)) key") }
            guard known.contains(field) else {
                throw fail("unknown field '\(field)' (known: \(known.sorted().joined(separator: ", ")))")
            }
        }
    }

    /// A duration field ("30s", or seconds) in milliseconds; `value` when absent.
    static func duration(_ spec: [LuaValue: LuaValue], _ field: String, default value: Int64,
                         _ fail: (String) -> RuleDeclarationError) throws -> Int64 {
        let raw = spec[.string(field)] ?? .nil
        if raw.isNil { return value }
        if let seconds = raw.doubleValue, let ms = Bounds.milliseconds(seconds: seconds) { return ms }
        guard let text = raw.stringValue, let ms = DurationParser.milliseconds(text) else {
            throw fail("\(field) must be a duration such as \"30s\" or \"5m\" (\(Bounds.durationRange)), got \(LuaFormat.describe(raw))")
        }
        return ms
    }

    /// `query`: a selector or a function (required).
    static func query(_ spec: [LuaValue: LuaValue], _ fail: (String) -> RuleDeclarationError) throws -> RuleQuery {
        switch spec[.string("query")] ?? .nil {
        case .string(let text): return .selector(text.string)
        case .function(let function): return .function(function)
        case .nil: throw fail("query is required: a selector such as \"gpu_temperature_celsius\" or function(q) … end")
        case let other: throw fail("query must be a selector string or a function, got \(LuaFormat.describe(other))")
        }
    }
}

/// A declaration the script got wrong (unknown field, bad duration, template error …).
public struct RuleDeclarationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
