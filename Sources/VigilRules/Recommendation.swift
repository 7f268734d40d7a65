import Foundation
import VigilCore
import VigilLua

/// Advice a `vigil.recommend` script gives: what it concerns, what to do, and what it would save.
/// One per rule and label set: seen again it is updated, not repeated; when the script stops returning
/// it, it expires.
public struct Recommendation: Codable, Sendable, Equatable {
    public var rule: String
    /// Fingerprint of the rule and labels: its identity.
    public var fingerprint: String
    /// What it concerns: "gpu", "task", "owner" or "host", and which one.
    public var subject: String
    public var subjectID: String
    public var labels: [String: String]
    public var title: String
    public var advice: String
    public var severity: String
    public var value: Double
    /// Estimated saving in money per month, in `currency`, when the script could compute one.
    public var savingPerMonth: Double?
    /// Estimated GPU-hours per month freed, when the script could compute them.
    public var gpuHoursPerMonth: Double?
    public var currency: String?
    public var firstSeen: Timestamp
    public var lastSeen: Timestamp
    /// When the condition stopped holding; nil while it holds.
    public var expiredAt: Timestamp?

    enum CodingKeys: String, CodingKey {
        case rule, fingerprint, subject, subjectID = "subject_id", labels, title, advice, severity, value
        case savingPerMonth = "saving_per_month", gpuHoursPerMonth = "gpu_hours_per_month", currency
        case firstSeen = "first_seen", lastSeen = "last_seen", expiredAt = "expired_at"
    }

    /// Most valuable first: money saved, then GPU-hours, then severity, then the oldest.
    public static func ranked(_ items: [Recommendation]) -> [Recommendation] {
        items.sorted { a, b in
            let left = (a.savingPerMonth ?? 0, a.gpuHoursPerMonth ?? 0, SeverityLevel.index(a.severity) ?? 0)
            let right = (b.savingPerMonth ?? 0, b.gpuHoursPerMonth ?? 0, SeverityLevel.index(b.severity) ?? 0)
            if left != right { return left > right }
            return (a.firstSeen, a.rule, a.fingerprint) < (b.firstSeen, b.rule, b.fingerprint)
        }
    }
}

/// A recommendation generator as a script declared it with `vigil.recommend "Name" { … }`.
final class RecommendDefinition {
    let name: String
    let file: String
    let interval: Int64
    let query: RuleQuery
    let when: LuaReference?
    let saving: LuaReference?
    let title: Template
    let advice: Template
    let severity: String
    /// The label naming what it concerns; nil: the first of task, gpu, owner the labels have, else the host.
    let about: String?

    static let fields: Set<String> = ["every", "query", "when", "title", "advice", "severity", "about", "saving"]
    static let subjects = ["task", "gpu", "owner"]

    init(name: String, file: String, defaultInterval: Int64, spec: [LuaValue: LuaValue]) throws {
        self.name = name
        self.file = file
        func fail(_ message: String) -> RuleDeclarationError { RuleDeclarationError("vigil.recommend \"\(name)\": \(message)") }
        try Declaration.checkFields(spec, Self.fields, fail)
        interval = try Declaration.duration(spec, "every", default: defaultInterval, fail)
        guard interval > 0 else { throw fail("every must be longer than 0") }
        query = try Declaration.query(spec, fail)
        func function(_ field: String) throws -> LuaReference? { try optionalFunction(spec, field, fail) }
        when = try function("when")
        saving = try function("saving")
        func template(_ field: String, required: Bool) throws -> Template {
            let value = spec[.string(field)] ?? .nil
            if value.isNil && !required { return try! Template("") }
            guard let text = value.stringValue else { throw fail("\(field) is required and must be a string") }
            do { return try Template(text) } catch { throw fail("\(field): \(error)") }
        }
        title = try template("title", required: true)
        advice = try template("advice", required: false)
        let severityValue = spec[.string("severity")] ?? .nil
        if severityValue.isNil {
            severity = "info"
        } else {
            guard let text = severityValue.stringValue, SeverityLevel.index(text) != nil else {
                throw fail("severity must be one of \(SeverityLevel.names.joined(separator: ", "))")
            }
            severity = text
        }
        let aboutValue = spec[.string("about")] ?? .nil
        if aboutValue.isNil {
            about = nil
        } else {
            guard let text = aboutValue.stringValue, Labels.isValidLabelName(text) else {
                throw fail("about must name the label that says what it concerns, such as \"gpu\", \"task\" or \"owner\"")
            }
            about = text
        }
    }
}

/// A performance indicator as a script declared it with `vigil.indicator "speed" { … }`: a value per task
/// and for the host, turned into a level by thresholds users tune.
final class IndicatorDefinition {
    let name: String
    let file: String
    /// Ascending levels, such as Low, Medium, High.
    let levels: [String]
    /// One fewer than `levels`, ascending: a value at or above `thresholds[i]` reaches `levels[i + 1]`.
    let thresholds: [Double]
    let task: LuaReference?
    let host: LuaReference?

    static let fields: Set<String> = ["levels", "thresholds", "task", "host"]

    init(name: String, file: String, spec: [LuaValue: LuaValue]) throws {
        self.name = name
        self.file = file
        func fail(_ message: String) -> RuleDeclarationError { RuleDeclarationError("vigil.indicator \"\(name)\": \(message)") }
        try Declaration.checkFields(spec, Self.fields, fail)
        guard let levels = spec[.string("levels")]?.arrayValue?.compactMap(\.stringValue), levels.count >= 1 else {
            throw fail("levels is required: a list of names, lowest first, such as { \"Low\", \"Medium\", \"High\" }")
        }
        self.levels = levels
        let thresholdsValue = spec[.string("thresholds")] ?? .nil
        let thresholds = thresholdsValue.isNil ? [] : (thresholdsValue.arrayValue?.compactMap(\.doubleValue) ?? [])
        if !thresholdsValue.isNil && thresholdsValue.arrayValue?.count != thresholds.count {
            throw fail("thresholds must be a list of numbers")
        }
        guard thresholds.isEmpty || thresholds.count == levels.count - 1 else {
            throw fail("\(levels.count) levels need \(levels.count - 1) thresholds (a value at or above thresholds[i] reaches levels[i+1]), got \(thresholds.count)")
        }
        guard zip(thresholds, thresholds.dropFirst()).allSatisfy({ $0 < $1 }) else { throw fail("thresholds must be ascending") }
        self.thresholds = thresholds
        func function(_ field: String) throws -> LuaReference? { try optionalFunction(spec, field, fail) }
        task = try function("task")
        host = try function("host")
        guard task != nil || host != nil else { throw fail("give task = function(t) … end, host = function(h) … end, or both") }
    }

    /// The level of a function's result: a number goes through the thresholds; a string must be a level.
    func level(of result: LuaValue) throws -> (level: String, value: Double?)? {
        if result.isNil { return nil }
        if let number = result.doubleValue {
            guard number.isFinite else { return nil }
            guard !thresholds.isEmpty else {
                throw RuleDeclarationError("vigil.indicator \"\(name)\" has no thresholds, so its functions must return a level name")
            }
            let index = thresholds.filter { number >= $0 }.count
            return (levels[index], number)
        }
        if let text = result.stringValue {
            guard levels.contains(text) else {
                throw RuleDeclarationError("vigil.indicator \"\(name)\" returned \"\(text)\", which is not one of its levels (\(levels.joined(separator: ", ")))")
            }
            return (text, nil)
        }
        throw RuleDeclarationError("vigil.indicator \"\(name)\" must return a number, a level name or nil, not \(result.typeName)")
    }
}

/// The function in `spec[field]`, nil when absent; anything else is the declaration's mistake.
private func optionalFunction(_ spec: [LuaValue: LuaValue], _ field: String,
                              _ fail: (String) -> RuleDeclarationError) throws -> LuaReference? {
    switch spec[.string(field)] ?? .nil {
    case .nil: return nil
    case .function(let reference): return reference
    case let other: throw fail("\(field) must be a function, got \(LuaFormat.describe(other))")
    }
}

/// One indicator's reading for a task or the host.
public struct IndicatorReading: Codable, Sendable, Equatable {
    public var name: String
    public var level: String
    public var value: Double?
    /// The levels in order, lowest first (for bars and colours).
    public var levels: [String]
}

/// Every indicator for the host and for each task.
public struct IndicatorReport: Codable, Sendable, Equatable {
    public var host: [IndicatorReading] = []
    public var tasks: [Int64: [IndicatorReading]] = [:]
    /// Indicators whose function failed, with the error.
    public var errors: [String] = []

    public init() {}
}

extension LuaValue {
    /// A JSON-shaped value (what `JSONSerialization` gives) as a Lua value; objects become tables,
    /// arrays sequences, null nil.
    static func fromJSON(_ object: Any) -> LuaValue {
        switch object {
        case let number as NSNumber:
            // JSONSerialization gives booleans as NSNumbers of type char ("c"), which JSON numbers never are.
            if String(cString: number.objCType) == "c" { return .boolean(number.boolValue) }
            let double = number.doubleValue
            if double == double.rounded(), abs(double) < 9e15 { return .integer(Int64(double)) }
            return .number(double)
        case let text as String: return .string(text)
        case let array as [Any]: return .array(array.map(fromJSON))
        case let dictionary as [String: Any]:
            var table: [LuaValue: LuaValue] = [:]
            for (key, value) in dictionary where !(value is NSNull) { table[.string(key)] = fromJSON(value) }
            return .table(table)
        default: return .nil
        }
    }

    /// An encodable value as a Lua table with its JSON field names.
    static func encoding<T: Encodable>(_ value: T) -> LuaValue {
        guard let data = try? JSONEncoder().encode(value),
              let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else { return .nil }
        return fromJSON(object)
    }
}
