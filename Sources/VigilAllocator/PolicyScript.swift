import Foundation
import Logging
import VigilCore
import VigilLua
import VigilRules
import VigilStore

/// The allocator policy script (`rules/policy.lua` by default): `vigil.policy { … }` sets the strategy,
/// target, weights and limits, and may give `score(task, gpu, w)`. The file is checked for changes on
/// every pass; a version that fails to load leaves the last good one in force and says why. The score
/// function is called through one Lua call per pass with every candidate pair (never once per pair from
/// Swift); when it fails, the built-in score decides that pass and the error is kept.
public final class PolicyScript: PlacementScorer {
    public let path: String
    public private(set) var policy: Policy
    /// Why the last load or score call failed (file:line and traceback), nil when all is well.
    public private(set) var lastError: String?
    public private(set) var scoreCalls = 0
    public private(set) var scoreFailures = 0
    /// True when the file declares `score`.
    public var hasScore: Bool { score != nil }

    private let store: MetricStore
    private let clock: any WallClock
    private let limits: LuaLimits
    private let logger: Logger
    private var state: LuaState?
    private var score: LuaReference?
    private var batch: LuaReference?
    private var stamp: FileStamp?

    struct FileStamp: Equatable {
        var modified: Modified
        var size: Int64
        var inode: UInt64
    }

    struct Modified: Equatable {
        var seconds: Int
        var nanoseconds: Int
    }

    public init(path: String, store: MetricStore, clock: any WallClock, limits: LuaLimits = .default, logger: Logger) {
        self.path = path
        self.store = store
        self.clock = clock
        self.limits = limits
        self.logger = logger
        policy = Policy()
    }

    /// Loads the file if it changed since the last look. Returns true when a new version took effect.
    @discardableResult
    public func reloadIfChanged() -> Bool {
        let current = Self.stamp(path)
        guard current != stamp else { return false }
        stamp = current
        guard current != nil else {
            // No file is not a mistake: the defaults (or the last version loaded) stay in force.
            lastError = nil
            logger.notice(state == nil ? "no allocator policy file; the built-in defaults apply" : "allocator policy file removed; the last version loaded stays",
                          metadata: ["policy.file": "\(path)"])
            return false
        }
        do {
            try load()
            lastError = nil
            logger.info("allocator policy loaded", metadata: ["policy.file": "\(path)", "policy.strategy": "\(policy.strategy)",
                                                              "policy.target": "\(policy.target)"])
            return true
        } catch {
            lastError = "\(error)"
            logger.error("allocator policy not loaded; the last good version stays", metadata: ["policy.file": "\(path)", "error": "\(error)"])
            return false
        }
    }

    static func stamp(_ path: String) -> FileStamp? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileStamp(modified: Modified(seconds: info.st_mtim.tv_sec, nanoseconds: info.st_mtim.tv_nsec),
                         size: Int64(info.st_size), inode: UInt64(info.st_ino))
    }

    private func load() throws {
        let fresh = try LuaState(name: path, limits: limits, rulesDirectory: (path as NSString).deletingLastPathComponent, logger: logger)
        final class Declared { var spec: [LuaValue: LuaValue]? }
        let declared = Declared()
        let function = LuaValue.hostFunction(LuaHostFunction("policy") { args in
            let spec = try args.table(0)
            guard let table = spec.tableValue else { throw args.badArgument(0, expected: "table") }
            guard declared.spec == nil else { throw LuaHostError("vigil.policy is declared twice in this file") }
            declared.spec = table
            return []
        })
        VigilLuaModule.install(in: fresh, store: store, clock: clock, declarations: ["policy": function])
        try fresh.runFile(path)
        guard let spec = declared.spec else {
            throw PolicyError("\(path): the file must call vigil.policy { … }")
        }
        let parsed = try Self.parse(spec, file: path)
        var scoreReference: LuaReference?
        if case .function(let reference) = spec[.string("score")] ?? .nil { scoreReference = reference }
        let batchReference = try fresh.run(Self.batchSource, chunkName: "=policy-batch").first.flatMap { value -> LuaReference? in
            if case .function(let reference) = value { return reference }
            return nil
        }
        state = fresh
        policy = parsed
        score = scoreReference
        batch = batchReference
    }

    /// Calls `score` for every pair in one Lua call; `gpu.builtin` holds the built-in score of that pair.
    static let batchSource = """
        return function(score, tasks, gpus, pairs, w)
          local out = {}
          for i = 1, #pairs, 3 do
            local t, g = tasks[pairs[i]], gpus[pairs[i + 1]]
            g.builtin = pairs[i + 2]
            local s = score(t, g, w)
            if type(s) ~= "number" or s ~= s then
              error(("score must return a number, got %s for task %s on GPU %s"):format(type(s), tostring(t.id), tostring(g.index)), 0)
            end
            out[#out + 1] = s
          end
          return out
        end
        """

    public func scores(_ requests: [ScoreRequest], policy: Policy) -> [Double]? {
        guard let state, let score, let batch else { return nil }
        var taskIndex: [Int64: Int] = [:]
        var gpuIndex: [Int: Int] = [:]
        var tasks: [LuaValue] = []
        var gpus: [LuaValue] = []
        var pairs: [LuaValue] = []
        pairs.reserveCapacity(requests.count * 3)
        for request in requests {
            let t = taskIndex[request.task.id] ?? {
                tasks.append(Self.value(request.task))
                taskIndex[request.task.id] = tasks.count
                return tasks.count
            }()
            let g = gpuIndex[request.gpu.index] ?? {
                gpus.append(Self.value(request.gpu, free: request.freeMemory, tasks: request.tasksOnGPU))
                gpuIndex[request.gpu.index] = gpus.count
                return gpus.count
            }()
            pairs.append(.integer(Int64(t)))
            pairs.append(.integer(Int64(g)))
            pairs.append(.number(request.builtin))
        }
        scoreCalls += 1
        do {
            let result = try state.call(batch, [.function(score), .array(tasks), .array(gpus), .array(pairs), Self.weights(policy)])
            guard let values = result.first?.arrayValue, values.count == requests.count else {
                throw PolicyError("score returned \(result.first?.arrayValue?.count ?? 0) values for \(requests.count) pairs")
            }
            lastError = nil
            return values.map { $0.doubleValue ?? 0 }
        } catch {
            scoreFailures += 1
            if lastError != "\(error)" {
                logger.warning("policy score failed; the built-in score decides", metadata: ["policy.file": "\(path)", "error": "\(error)"])
            }
            lastError = "\(error)"
            return nil
        }
    }

    static func value(_ task: PlanTask) -> LuaValue {
        .table([
            "id": .integer(task.id), "owner": .string(task.owner), "gpus": .integer(Int64(task.gpus)),
            "gpu_memory": .integer(task.gpuMemory), "priority": .integer(Int64(task.priority)),
            "expected_seconds": .number(Double(task.duration) / 1000),
        ])
    }

    static func value(_ gpu: GPUSlot, free: Int64, tasks: Int) -> LuaValue {
        .table([
            "index": .integer(Int64(gpu.index)), "uuid": .string(gpu.uuid), "model": .string(gpu.model),
            "memory_total": .integer(gpu.memoryTotal), "memory_free": .integer(free), "tasks": .integer(Int64(tasks)),
            "utilization": .number(gpu.utilization), "temperature": .number(gpu.temperature),
            "clock_sm": .number(gpu.clockSM), "clock_sm_max": .number(gpu.clockSMMax), "power": .number(gpu.powerWatts),
            "errors": .number(gpu.recentErrors), "price_per_hour": .number(gpu.pricePerHour),
        ])
    }

    static func weights(_ policy: Policy) -> LuaValue {
        .table(["speed": .number(policy.weights.speed), "efficiency": .number(policy.weights.efficiency),
                "reliability": .number(policy.weights.reliability), "target": .string(policy.target.rawValue)])
    }

    /// Reads `vigil.policy { … }`; unknown fields and wrong values are errors naming the field.
    static func parse(_ spec: [LuaValue: LuaValue], file: String) throws -> Policy {
        var policy = Policy()
        func number(_ key: String, _ value: LuaValue, min: Double = 0, max: Double = 1e12) throws -> Double {
            guard let number = value.doubleValue, number >= min, number <= max, number.isFinite else {
                let shown = value.doubleValue.map { "\($0)" } ?? value.typeName
                throw PolicyError("\(file): vigil.policy: \(key) must be a number from \(min.formatted()) to \(max.formatted()), got \(shown)")
            }
            return number
        }
        func duration(_ key: String, _ value: LuaValue) throws -> Int64 {
            if let text = value.stringValue, let ms = DurationParser.milliseconds(text), ms > 0 { return ms }
            if let seconds = value.doubleValue, seconds > 0, let ms = Bounds.milliseconds(seconds: seconds) { return ms }
            throw PolicyError("\(file): vigil.policy: \(key) must be a duration such as \"5s\" or \"7d\" (\(Bounds.durationRange))")
        }
        for (key, value) in spec {
            guard let name = key.stringValue else { throw PolicyError("\(file): vigil.policy: fields are named, not numbered") }
            switch name {
            case "strategy":
                guard let text = value.stringValue, let strategy = Policy.Strategy(rawValue: text) else {
                    throw PolicyError("\(file): vigil.policy: strategy must be immediate, batch or priority")
                }
                policy.strategy = strategy
            case "target":
                guard let text = value.stringValue, let target = Policy.Target(rawValue: text) else {
                    throw PolicyError("\(file): vigil.policy: target must be performance, cost or balanced")
                }
                policy.target = target
            case "weights":
                guard let table = value.tableValue else { throw PolicyError("\(file): vigil.policy: weights must be a table") }
                for (k, v) in table {
                    switch k.stringValue {
                    case "speed": policy.weights.speed = try number("weights.speed", v)
                    case "efficiency": policy.weights.efficiency = try number("weights.efficiency", v)
                    case "reliability": policy.weights.reliability = try number("weights.reliability", v)
                    default: throw PolicyError("\(file): vigil.policy: unknown weight \(k.stringValue ?? "\(k)") (known: speed, efficiency, reliability)")
                    }
                }
            case "priority":
                guard let table = value.tableValue else { throw PolicyError("\(file): vigil.policy: priority must be a table of weights") }
                for (k, v) in table {
                    switch k.stringValue {
                    case "class": policy.priorityWeights.priorityClass = try number("priority.class", v)
                    case "age": policy.priorityWeights.age = try number("priority.age", v)
                    case "fair_share": policy.priorityWeights.fairShare = try number("priority.fair_share", v)
                    case "size": policy.priorityWeights.size = try number("priority.size", v)
                    default: throw PolicyError("\(file): vigil.policy: unknown priority weight \(k.stringValue ?? "\(k)") (known: class, age, fair_share, size)")
                    }
                }
            case "tasks_per_gpu": policy.tasksPerGPU = Int(try number(name, value, min: 1, max: 1024))
            case "batch_window": policy.batchWindow = try duration(name, value)
            case "backfill":
                guard case .boolean(let flag) = value else { throw PolicyError("\(file): vigil.policy: backfill must be true or false") }
                policy.backfill = flag
            case "fair_share_half_life": policy.fairShareHalfLife = try duration(name, value)
            case "max_age": policy.maxAge = try duration(name, value)
            case "default_duration": policy.defaultDuration = try duration(name, value)
            case "size_scale": policy.sizeScale = try number(name, value, min: 0.000001)
            case "score_window": policy.scoreWindow = Int(try number(name, value, min: 1, max: 100_000))
            case "score":
                guard case .function = value else { throw PolicyError("\(file): vigil.policy: score must be a function(task, gpu, w)") }
            default:
                throw PolicyError("""
                    \(file): vigil.policy: unknown field \(name) (known: strategy, target, weights, priority, tasks_per_gpu, \
                    batch_window, backfill, fair_share_half_life, max_age, default_duration, size_scale, score_window, score)
                    """)
            }
        }
        return policy
    }
}

public struct PolicyError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
