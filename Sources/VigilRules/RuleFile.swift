import Foundation
import Logging
import VigilCore
import VigilLua
import VigilStore

/// Collects what a script declares while it loads: `vigil.group { … }` and `vigil.alert "Name" { … }`.
final class RuleDeclarations {
    let file: String
    var defaultInterval: Int64
    var group: String
    private(set) var alerts: [AlertRuleDefinition] = []
    private(set) var recommendations: [RecommendDefinition] = []
    private(set) var indicators: [IndicatorDefinition] = []

    init(file: String, defaultInterval: Int64 = 15_000) {
        self.file = file
        self.defaultInterval = defaultInterval
        group = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
    }

    func alertFunction() -> LuaValue {
        .hostFunction(LuaHostFunction("alert") { [self] args in
            let name = try args.string(0)
            guard Labels.isValidMetricName(name) else {
                throw args.badArgument(0, "alert names are identifiers such as GpuTooHot, got \"\(name)\"")
            }
            return [.hostFunction(LuaHostFunction("alert") { [self] args in
                let spec = try args.table(0)
                guard let table = spec.tableValue else { throw args.badArgument(0, expected: "table") }
                if alerts.contains(where: { $0.name == name }) {
                    throw LuaHostError("vigil.alert \"\(name)\" is declared twice in this file")
                }
                do {
                    alerts.append(try AlertRuleDefinition(name: name, file: file, group: group,
                                                          defaultInterval: defaultInterval, spec: table))
                } catch let error as RuleDeclarationError {
                    throw LuaHostError(error.description)
                }
                return []
            })]
        })
    }

    /// `vigil.recommend "Name" { … }` and `vigil.indicator "name" { … }`: a name, then a table.
    private func declaration(_ kind: String, validName: @escaping (String) -> Bool, hint: String,
                             _ add: @escaping (String, [LuaValue: LuaValue]) throws -> Void) -> LuaValue {
        .hostFunction(LuaHostFunction(kind) { args in
            let name = try args.string(0)
            guard validName(name) else { throw args.badArgument(0, "\(hint), got \"\(name)\"") }
            return [.hostFunction(LuaHostFunction(kind) { args in
                let spec = try args.table(0)
                guard let table = spec.tableValue else { throw args.badArgument(0, expected: "table") }
                do {
                    try add(name, table)
                } catch let error as RuleDeclarationError {
                    throw LuaHostError(error.description)
                }
                return []
            })]
        })
    }

    func recommendFunction() -> LuaValue {
        declaration("recommend", validName: Labels.isValidMetricName, hint: "recommendation names are identifiers such as IdleGpu") { [self] name, table in
            if recommendations.contains(where: { $0.name == name }) {
                throw RuleDeclarationError("vigil.recommend \"\(name)\" is declared twice in this file")
            }
            recommendations.append(try RecommendDefinition(name: name, file: file, defaultInterval: defaultInterval, spec: table))
        }
    }

    func indicatorFunction() -> LuaValue {
        declaration("indicator", validName: Labels.isValidLabelName, hint: "indicator names are identifiers such as speed") { [self] name, table in
            if indicators.contains(where: { $0.name == name }) {
                throw RuleDeclarationError("vigil.indicator \"\(name)\" is declared twice in this file")
            }
            indicators.append(try IndicatorDefinition(name: name, file: file, spec: table))
        }
    }

    func groupFunction() -> LuaValue {
        .hostFunction(LuaHostFunction("group") { [self] args in
            let spec = try args.table(0)
            for (key, value) in spec.tableValue ?? [:] {
                switch key.stringValue {
                case "name":
                    guard let name = value.stringValue, !name.isEmpty else { throw args.badArgument(0, "name must be a string") }
                    group = name
                case "every":
                    guard let text = value.stringValue ?? value.doubleValue.map({ "\($0)" }),
                          let ms = DurationParser.milliseconds(text), ms > 0 else {
                        throw args.badArgument(0, "every must be a duration such as \"30s\"")
                    }
                    defaultInterval = ms
                default:
                    throw args.badArgument(0, "unknown field '\(LuaFormat.describe(key))' in vigil.group (known: every, name)")
                }
            }
            return []
        })
    }
}

/// One rule file loaded into a sandboxed state of its own.
final class RuleFile {
    let path: String
    /// The file's bytes when it was loaded: a reload happens when they change.
    let content: Data
    let state: LuaState
    let query: QueryFunctions
    /// The evaluation time queries see; set before each evaluation (virtual in tests).
    let clock: ManualWallClock
    let rules: [AlertRuleDefinition]
    let recommendations: [RecommendDefinition]
    let indicators: [IndicatorDefinition]

    /// Compiles and runs `path` in a fresh state. Errors (syntax, runtime, declarations) name the file and line.
    init(path: String, content: Data, store: MetricStore, limits: LuaLimits, rulesDirectory: String,
         defaultInterval: Int64, history: (any HistorySource)? = nil, promql: PromQLSources = PromQLSources([:]), logger: Logger) throws {
        self.path = path
        self.content = content
        clock = ManualWallClock(0)
        state = try LuaState(name: path, limits: limits, rulesDirectory: rulesDirectory, logger: logger)
        let declarations = RuleDeclarations(file: path, defaultInterval: defaultInterval)
        let (module, query) = VigilLuaModule.make(store: store, clock: clock, declarations: declarations, history: history, promql: promql)
        self.query = query
        state.registerModule("vigil", module)
        try state.run(String(decoding: content, as: UTF8.self), chunkName: path)
        rules = declarations.alerts
        recommendations = declarations.recommendations
        indicators = declarations.indicators
        // Calls a rule's query function with `vigil.query`, without building that table per call; and
        // calls a condition with a series table kept from one evaluation to the next, its value updated.
        let wrappers = try state.run("""
            local q = require('vigil').query
            return function(f) return f(q) end, function(f, s, v) s.value = v; return f(s) end
            """, chunkName: "=(vigil rule calls)")
        guard wrappers.count == 2, case .function(let queryCaller) = wrappers[0], case .function(let valueCaller) = wrappers[1] else {
            throw RuleLoadError(description: "\(path): internal error: no call wrappers")
        }
        self.queryCaller = queryCaller
        self.valueCaller = valueCaller
    }

    /// Names of everything it declares: alerts, then recommendations, then indicators.
    var declaredNames: [String] { rules.map(\.name) + recommendations.map(\.name) + indicators.map(\.name) }

    private var queryCaller: LuaReference?
    private var valueCaller: LuaReference?
    /// The Lua table `{ name =, labels = {…}, value = }` of each series a selector query returned.
    private var seriesTables: [SeriesRef: LuaReference] = [:]

    /// Runs a rule's `query = function(q) … end`.
    func call(query function: LuaReference) throws -> [LuaValue] {
        try state.call(queryCaller!, [.function(function)])
    }

    /// Runs a condition on one series of a selector query: its table is made once and reused.
    func call(condition function: LuaReference, series ref: SeriesRef, value: Double) throws -> [LuaValue] {
        let table: LuaReference
        if let cached = seriesTables[ref] {
            table = cached
        } else {
            if seriesTables.count >= 65_536 {
                // Series come and go; start the cache again rather than let it grow without bound.
                for old in seriesTables.values { state.release(old) }
                seriesTables.removeAll()
            }
            var element: [LuaValue: LuaValue] = [.string("labels"): QueryFunctions.labelsTable(ref.labels)]
            if let name = ref.labels.name { element[.string("name")] = .string(name) }
            table = state.reference(to: .table(element))
            seriesTables[ref] = table
        }
        return try state.call(valueCaller!, [.function(function), .function(table), .number(value)])
    }
}
