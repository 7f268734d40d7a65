import Foundation
import Logging
import VigilCore
import VigilLua
#if canImport(Glibc)
import Glibc
#endif

/// `lua`: a `vigil.collector` script in the sandbox. It reads only below the allowed folders (/proc and
/// /sys unless the manifest says otherwise), through `vigil.read_file` and `vigil.glob`, and reports
/// samples with `emit(name, value, labels, type, help)`:
///
/// ```lua
/// local vigil = require "vigil"
/// vigil.collector "thermal" {
///   collect = function(emit)
///     for _, zone in ipairs(vigil.glob("/sys/class/thermal/thermal_zone*")) do
///       emit("node_thermal_zone_temp", tonumber(vigil.read_file(zone .. "/temp")) / 1000,
///            { zone = zone:match("%d+$") }, "gauge", "Zone temperature in °C.")
///     end
///   end,
/// }
/// ```
///
/// The sandbox's limits (memory, instructions, deadline) apply to every round; an error names the
/// script's file and line.
public final class LuaCollectorPlugin: Collector, @unchecked Sendable {
    public let name: String
    public let script: String
    public let allowed: [String]
    public let limits: PluginLimits
    /// The interval the script asked for with `every`, if any.
    public private(set) var every: Int64?
    // The Lua state has one owner at a time: collect runs under this lock.
    private let lock = NSLock()
    private let state: LuaState
    private let round = Round()
    private var collectFunction: LuaReference?

    /// What `emit` writes into during one round.
    private final class Round {
        var batch = SampleBatch()
        var admission = SeriesAdmission(limit: .max)
    }

    public init(name: String, script: String, allowed: [String] = ["/proc", "/sys"], luaLimits: LuaLimits = .default,
                limits: PluginLimits = PluginLimits(), logger: Logger) throws {
        self.name = name
        self.script = script
        self.limits = limits
        self.allowed = allowed.map { Self.canonical($0) ?? $0 }
        state = try LuaState(name: script, limits: luaLimits, rulesDirectory: (script as NSString).deletingLastPathComponent, logger: logger)
        state.registerModule("vigil", module())
        do {
            try state.runFile(script)
        } catch {
            throw PluginError(plugin: name, "\(error)")
        }
        guard collectFunction != nil else {
            throw PluginError(plugin: name, "\(script) declares no vigil.collector { collect = function(emit) … end }")
        }
    }

    public func collect() throws -> SampleBatch {
        try lock.withLock {
            guard let collectFunction else { throw PluginError(plugin: name, "no collect function") }
            round.batch = SampleBatch()
            round.admission = SeriesAdmission(limit: limits.series)
            do {
                try state.call(collectFunction, [emitFunction])
            } catch {
                throw PluginError(plugin: name, "\(error)")
            }
            return round.batch
        }
    }

    private lazy var emitFunction: LuaValue = .hostFunction(LuaHostFunction("emit") { [round] arguments in
        let name = try arguments.string(0)
        guard MetricText.isMetricName(name) else { throw arguments.badArgument(0, "invalid metric name \"\(name)\"") }
        let value = try arguments.number(1)
        var labels: [String: String] = [:]
        if let table = try arguments.optionalTable(2)?.tableValue {
            for (key, value) in table {
                guard let key = key.stringValue, MetricText.isLabelName(key) else { throw arguments.badArgument(2, "label names must be identifiers") }
                guard let text = value.stringValue ?? value.doubleValue.map({ LuaFormat.number($0) }) else {
                    throw arguments.badArgument(2, "label \(key) must be a string or a number")
                }
                labels[key] = text
            }
        }
        let kind: MetricKind
        switch arguments.count > 3 ? arguments[3].stringValue ?? "" : "" {
        case "counter": kind = .counter
        case "gauge", "": kind = .gauge
        case "untyped": kind = .untyped
        case let other: throw arguments.badArgument(3, "type must be gauge, counter or untyped, not \"\(other)\"")
        }
        let help = arguments.count > 4 ? arguments[4].stringValue ?? "" : ""
        if let refusal = round.admission.admit(Labels(name: name, labels)) { throw LuaHostError(refusal) }
        round.batch.add(name, kind, help: help, labels: labels, value)
        return []
    })

    /// The `vigil` module collector scripts see.
    private func module() -> LuaValue {
        var module: [LuaValue: LuaValue] = [:]
        module["collector"] = .hostFunction(LuaHostFunction("collector") { [unowned self] arguments in
            let declared = try arguments.string(0)
            return [.hostFunction(LuaHostFunction("collector") { [unowned self] arguments in
                let spec = try arguments.table(0)
                guard case .function(let function) = spec["collect"] else {
                    throw arguments.badArgument(0, "vigil.collector \"\(declared)\" needs collect = function(emit) … end")
                }
                if let every = spec["every"].stringValue {
                    guard let ms = DurationParser.milliseconds(every), ms > 0 else { throw arguments.badArgument(0, "every must be a duration such as 5s") }
                    self.every = ms
                }
                guard self.collectFunction == nil else { throw LuaHostError("a script declares one vigil.collector") }
                self.collectFunction = function
                return []
            })]
        })
        module["read_file"] = .hostFunction(LuaHostFunction("read_file") { [unowned self] arguments in
            let path = try arguments.string(0)
            let real = try self.permitted(path, arguments)
            let folders = self.allowed.map { BoundedFile.canonical($0) ?? $0 }
            switch BoundedFile.read(real, limit: self.limits.outputBytes, within: folders) {
            case .success(let bytes): return [.string(LuaString(bytes: bytes))]
            case .failure(.tooLarge(let limit)): throw LuaHostError("\(path) is larger than \(limit) bytes")
            case .failure(let refusal): return [.nil, .string("\(path) \(refusal)")]
            }
        })
        module["glob"] = .hostFunction(LuaHostFunction("glob") { [unowned self] arguments in
            let pattern = try arguments.string(0)
            guard self.allowed.contains(where: { pattern == $0 || pattern.hasPrefix($0 + "/") }) else {
                throw arguments.badArgument(0, "\(pattern) is outside the allowed folders (\(self.allowed.joined(separator: ", ")))")
            }
            var result = glob_t()
            defer { globfree(&result) }
            guard Glibc.glob(pattern, 0, nil, &result) == 0 else { return [.array([])] }
            var paths: [LuaValue] = []
            for i in 0..<Int(result.gl_pathc) {
                guard let entry = result.gl_pathv[i] else { continue }
                let path = String(cString: entry)
                if self.isAllowed(Self.canonical(path) ?? path) { paths.append(.string(path)) }
            }
            return [.array(paths)]
        })
        return .table(module)
    }

    /// The real path of `path` when it lies below an allowed folder (symbolic links resolved first).
    private func permitted(_ path: String, _ arguments: LuaArguments) throws -> String {
        // A path that does not exist is judged as written (read_file then answers nil and why).
        let real = Self.canonical(path) ?? (path as NSString).standardizingPath
        guard isAllowed(real) else {
            throw arguments.badArgument(0, "\(path) is outside the allowed folders (\(allowed.joined(separator: ", ")))")
        }
        return real
    }

    private func isAllowed(_ real: String) -> Bool {
        allowed.contains { real == $0 || real.hasPrefix($0 == "/" ? "/" : $0 + "/") }
    }

    static func canonical(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
