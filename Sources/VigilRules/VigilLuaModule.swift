import Foundation
import VigilCore
import VigilLua
import VigilStore

/// The `vigil` module scripts get from `require "vigil"`. Areas are sub-tables; this file registers
/// `vigil.now`, `vigil.query`, `vigil.format`, and the declarations `vigil.alert` and `vigil.group`.
/// Queries are computed in Swift and return plain tables: a vector is an array of
/// `{ name = "metric", labels = { gpu = "0" }, value = 42.0 }`.
public enum VigilLuaModule {
    /// Every function the module registers, as `area.name`; `rules/README.md` documents each
    /// (a test checks it).
    public static var functionNames: [String] {
        ["vigil.now", "vigil.alert", "vigil.group", "vigil.recommend", "vigil.indicator"] + QueryFunctions.names.map { "vigil.query.\($0)" }
            + FormatFunctions.names.map { "vigil.format.\($0)" } + HistoryFunctions.names.map { "vigil.history.\($0)" }
            + PromQLSources.names.map { "vigil.prometheus.\($0)" }
    }

    /// Builds the module for one state. `clock` gives evaluation time (virtual in tests).
    /// `declarations` receives the rules a script declares; without one they are checked and dropped.
    static func make(store: MetricStore, clock: any WallClock, declarations: RuleDeclarations,
                     history: (any HistorySource)? = nil, promql: PromQLSources = PromQLSources([:])) -> (LuaValue, QueryFunctions) {
        let query = QueryFunctions(store: store, clock: clock)
        var module: [LuaValue: LuaValue] = [:]
        module["now"] = .hostFunction(LuaHostFunction("now") { _ in [.number(Double(clock.now()) / 1000)] })
        module["query"] = query.table()
        module["format"] = FormatFunctions.table()
        module["alert"] = declarations.alertFunction()
        module["group"] = declarations.groupFunction()
        module["recommend"] = declarations.recommendFunction()
        module["indicator"] = declarations.indicatorFunction()
        module["history"] = HistoryFunctions.table(history, clock: clock)
        module["prometheus"] = promql.table(clock: clock)
        return (.table(module), query)
    }

    /// Registers `vigil` in `state` so `require "vigil"` returns it.
    public static func install(in state: LuaState, store: MetricStore, clock: any WallClock, history: (any HistorySource)? = nil) {
        state.registerModule("vigil", make(store: store, clock: clock, declarations: RuleDeclarations(file: state.name), history: history).0)
    }

    /// Registers `vigil` for a script that is not a rule file (the allocator policy): `now`, `query` and
    /// `format`, plus the script's own declarations in `declarations` (such as `policy`).
    public static func install(in state: LuaState, store: MetricStore, clock: any WallClock, declarations: [String: LuaValue]) {
        var module: [LuaValue: LuaValue] = [:]
        module["now"] = .hostFunction(LuaHostFunction("now") { _ in [.number(Double(clock.now()) / 1000)] })
        module["query"] = QueryFunctions(store: store, clock: clock).table()
        module["format"] = FormatFunctions.table()
        for (name, value) in declarations { module[.string(name)] = value }
        state.registerModule("vigil", .table(module))
    }
}

/// `vigil.format`: the template filters as functions.
enum FormatFunctions {
    static let names = ["bytes", "percent", "duration", "si", "number"]

    static func table() -> LuaValue {
        var table: [LuaValue: LuaValue] = [:]
        func add(_ name: String, _ body: @escaping @Sendable (Double) -> String) {
            table[.string(name)] = .hostFunction(LuaHostFunction(name) { args in [.string(body(try args.number(0)))] })
        }
        add("bytes") { Format.bytes($0) }
        add("percent") { Format.fixed($0 * 100, 1) + "%" }
        add("duration") { Format.duration(seconds: $0) }
        add("si") { Format.si($0) }
        add("number") { Format.number($0) }
        return .table(table)
    }
}

/// The query functions of `vigil.query`.
public final class QueryFunctions {
    public static let windowFunctions: [(String, RangeFunction)] = [
        ("avg_over_time", .avgOverTime), ("min_over_time", .minOverTime), ("max_over_time", .maxOverTime),
        ("sum_over_time", .sumOverTime), ("count_over_time", .countOverTime), ("stddev_over_time", .stddevOverTime),
        ("stdvar_over_time", .stdvarOverTime), ("last_over_time", .lastOverTime), ("present_over_time", .presentOverTime),
        ("rate", .rate), ("increase", .increase), ("delta", .delta), ("deriv", .deriv),
        ("changes", .changes), ("resets", .resets),
    ]
    public static let aggregations: [AggregationOperator] = [.sum, .avg, .min, .max, .count, .stddev, .stdvar]
    static var names: [String] {
        ["last", "value", "series", "vanished", "metric_names", "scalar", "quantile_over_time", "predict_linear", "topk", "bottomk"]
            + windowFunctions.map(\.0) + aggregations.map(\.rawValue)
    }

    let store: MetricStore
    let clock: any WallClock
    /// Parsed selectors and the series they matched, by selector text, valid while the store's
    /// series generation is unchanged: a rule's repeated query costs one string hash.
    private var selections: [String: (selector: SeriesSelector, generation: Int, refs: [SeriesRef])] = [:]

    init(store: MetricStore, clock: any WallClock) {
        self.store = store
        self.clock = clock
    }

    func table() -> LuaValue {
        var table: [LuaValue: LuaValue] = [:]
        func add(_ name: String, _ body: @escaping (LuaArguments) throws -> [LuaValue]) {
            table[.string(name)] = .hostFunction(LuaHostFunction(name, body))
        }
        add("last") { [self] args in
            [Self.vector(store.instant(try series(args, 0), at: clock.now()))]
        }
        table["value"] = .hostFunction(LuaHostFunction("value", scalar: { [self] args in
            let text = try args.string(0)
            let refs: [SeriesRef]
            do {
                refs = try series(text)
            } catch let error as VigilError {
                throw LuaHostError("bad argument #1 to 'value' (\(error.message))")
            }
            guard refs.count == 1, let value = store.lastValue(refs[0], at: clock.now()) else { return .nil }
            return .number(value)
        }))
        add("series") { [self] args in
            [.array(try series(args, 0).map { Self.labelsTable($0.labels) })]
        }
        add("vanished") { [self] args in
            let refs = try series(args, 0)
            let after = try duration(args, 1)
            let forget = args.count > 2 && !args[2].isNil ? try duration(args, 2) : store.retention
            let now = clock.now()
            var out: [LuaValue] = []
            for ref in refs.sorted(by: { $0.labels < $1.labels }) {
                guard let seen = store.lastSeen(ref, notAfter: now), seen.timestamp <= now - after,
                      seen.timestamp > now - forget else { continue }
                var element: [LuaValue: LuaValue] = [
                    "labels": Self.labelsTable(ref.labels), "value": .number(seen.value),
                    "last_seen": .number(Double(seen.timestamp) / 1000),
                ]
                if let name = ref.labels.name { element["name"] = .string(name) }
                out.append(.table(element))
            }
            return [.array(out)]
        }
        add("metric_names") { [self] _ in
            let names = Set(store.snapshot(at: clock.now()).map(\.name))
            return [.array(names.sorted().map { .string($0) })]
        }
        add("scalar") { args in
            guard let items = args[0].arrayValue, items.count == 1 else { return [.nil] }
            return [items[0]["value"]]
        }
        for (name, function) in Self.windowFunctions {
            add(name) { [self] args in
                let refs = try series(args, 0)
                let range = try duration(args, 1)
                return [Self.vector(store.evaluate(function, refs, range: range, at: clock.now()))]
            }
        }
        add("quantile_over_time") { [self] args in
            let q = try args.number(0)
            let refs = try series(args, 1)
            let range = try duration(args, 2)
            return [Self.vector(store.evaluate(.quantileOverTime(q), refs, range: range, at: clock.now()))]
        }
        add("predict_linear") { [self] args in
            let refs = try series(args, 0)
            let range = try duration(args, 1)
            let seconds = try args.number(2)
            return [Self.vector(store.evaluate(.predictLinear(seconds: seconds), refs, range: range, at: clock.now()))]
        }
        for operation in Self.aggregations {
            add(operation.rawValue) { args in
                let vector = try Self.readVector(args, 0)
                let grouping = try Self.grouping(args, 1)
                return [Self.vector(Aggregation.apply(operation, vector, grouping: grouping))]
            }
        }
        for operation in [AggregationOperator.topk, .bottomk] {
            add(operation.rawValue) { args in
                let k = try args.number(0)
                let vector = try Self.readVector(args, 1)
                let grouping = try Self.grouping(args, 2)
                return [Self.vector(Aggregation.apply(operation, vector, grouping: grouping, parameter: k))]
            }
        }
        return .table(table)
    }

    // MARK: Arguments

    /// The series the selector in argument `index` matches now.
    private func series(_ args: LuaArguments, _ index: Int) throws -> [SeriesRef] {
        do {
            return try series(try args.string(index))
        } catch let error as VigilError {
            throw args.badArgument(index, error.message)
        }
    }

    /// The series a selector matches now.
    func series(_ text: String) throws -> [SeriesRef] {
        let generation = store.seriesGeneration
        if let cached = selections[text] {
            if cached.generation == generation { return cached.refs }
            let refs = store.select(cached.selector)
            selections[text] = (cached.selector, generation, refs)
            return refs
        }
        let selector = try SeriesSelector(parsing: text)
        if selections.count >= 1024 { selections.removeAll(keepingCapacity: true) }
        let refs = store.select(selector)
        selections[text] = (selector, generation, refs)
        return refs
    }

    private func duration(_ args: LuaArguments, _ index: Int) throws -> Int64 {
        let value = args[index]
        if let seconds = value.doubleValue, seconds > 0, let ms = Bounds.milliseconds(seconds: seconds) { return ms }
        if let text = value.stringValue, let ms = DurationParser.milliseconds(text), ms > 0 { return ms }
        throw args.badArgument(index, "duration such as \"5m\" or seconds expected (\(Bounds.durationRange)), got \(value.isNil ? "nil" : LuaFormat.describe(value))")
    }

    static func grouping(_ args: LuaArguments, _ index: Int) throws -> Grouping {
        guard let options = try args.optionalTable(index) else { return .all }
        func names(_ key: String) throws -> Set<String>? {
            let value = options[key]
            if value.isNil { return nil }
            guard let items = value.arrayValue else { throw args.badArgument(index, "'\(key)' must be a list of label names") }
            return Set(items.compactMap(\.stringValue))
        }
        if let by = try names("by") { return .by(by) }
        if let without = try names("without") { return .without(without) }
        return .all
    }

    // MARK: Conversions

    static func labelsTable(_ labels: Labels) -> LuaValue {
        var table: [LuaValue: LuaValue] = [:]
        for label in labels where label.name != Labels.metricName {
            table[.string(label.name)] = .string(label.value)
        }
        return .table(table)
    }

    static func vector(_ samples: [VectorSample]) -> LuaValue {
        .array(samples.sorted { $0.labels < $1.labels }.map { sample in
            var element: [LuaValue: LuaValue] = ["labels": labelsTable(sample.labels), "value": .number(sample.value)]
            if let name = sample.labels.name { element["name"] = .string(name) }
            return .table(element)
        })
    }

    static func readVector(_ args: LuaArguments, _ index: Int) throws -> [VectorSample] {
        guard let items = args[index].arrayValue else { throw args.badArgument(index, expected: "vector (table)") }
        return try items.map { item in
            guard let value = item["value"].doubleValue else {
                throw args.badArgument(index, "every element needs a numeric 'value'")
            }
            var pairs: [Label] = []
            if let labels = item["labels"].tableValue {
                for (key, value) in labels {
                    if let k = key.stringValue, let v = value.stringValue { pairs.append(Label(k, v)) }
                }
            }
            if let name = item["name"].stringValue { pairs.append(Label(Labels.metricName, name)) }
            return VectorSample(labels: Labels(pairs), value: value)
        }
    }
}

extension Dictionary where Key == LuaValue, Value == LuaValue {
    subscript(key: String) -> LuaValue? {
        get { self[LuaValue.string(key)] }
        set { self[LuaValue.string(key)] = newValue }
    }
}
