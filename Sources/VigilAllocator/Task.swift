import Foundation
import VigilCore

/// What a submitter asks for: the command and its requirements. Sizes in bytes, times in milliseconds.
public struct TaskSpec: Codable, Sendable, Equatable {
    public var command: [String]
    public var directory: String
    public var environment: [String: String] = [:]
    /// The Unix user the task is charged to (fair share and cost reports).
    public var owner: String
    public var name: String?
    /// Groups runs for duration prediction; defaults to the program's file name.
    public var kind: String?
    public var gpus: Int = 0
    /// Declared GPU memory per GPU; 0 means a whole GPU.
    public var gpuMemory: Int64 = 0
    /// The run is stopped past this (paused time not counted).
    public var timeLimit: Int64?
    /// The submitter's guess, used for planning until history exists.
    public var expectedDuration: Int64?
    public var priority: TaskPriority = .normal
    /// In the configured currency; not started when the predicted cost is higher, stopped when reached.
    public var costLimit: Double?
    public var after: [Dependency] = []
    /// Start only inside an off-peak window.
    public var offPeak = false

    public init(command: [String], directory: String, owner: String) {
        self.command = command
        self.directory = directory
        self.owner = owner
    }

    /// The most GPUs one task may ask for, arguments in its command, and bytes of its name, kind or owner.
    public static let maxGPUs = 1024
    public static let maxArguments = 4096
    public static let maxNameBytes = 256

    /// What is out of range in this spec, naming the field and its range, or nil when every number and size is
    /// within bounds. Checked at submit and again for every row read back from the database, so that no figure
    /// can make the planner's time arithmetic overflow.
    public var rangeProblem: String? {
        if command.count > Self.maxArguments { return "command has \(command.count) arguments; at most \(Self.maxArguments)" }
        guard (0...Self.maxGPUs).contains(gpus) else { return "gpus must be from 0 to \(Self.maxGPUs), not \(gpus)" }
        guard (0...Bounds.maxMemoryBytes).contains(gpuMemory) else {
            return "gpu_memory must be from 0 (whole GPUs) to \(Bounds.maxMemoryBytes) bytes, not \(gpuMemory)"
        }
        if let limit = timeLimit, !(1...Bounds.maxDuration).contains(limit) {
            return "time_limit_ms must be from 1 to \(Bounds.maxDuration) (100 years), not \(limit)"
        }
        if let expected = expectedDuration, !(1...Bounds.maxDuration).contains(expected) {
            return "expected_duration_ms must be from 1 to \(Bounds.maxDuration) (100 years), not \(expected)"
        }
        if let limit = costLimit, !(limit.isFinite && limit >= 0 && limit <= 1e15) {
            return "cost_limit must be a number from 0 to 1e15, not \(limit)"
        }
        for (field, value) in [("owner", owner), ("name", name ?? ""), ("kind", kind ?? "")] where value.utf8.count > Self.maxNameBytes {
            return "\(field) is \(value.utf8.count) bytes long; at most \(Self.maxNameBytes)"
        }
        if let bad = after.first(where: { $0.task <= 0 }) { return "after: task ids are positive, not \(bad.task)" }
        return nil
    }

    /// The key that groups runs of "the same" task for prediction.
    public var predictionKey: String {
        if let kind, !kind.isEmpty { return kind }
        return command.first.map { ($0 as NSString).lastPathComponent } ?? ""
    }

    /// The JSON fields a spec has: a request with any other is refused (a misspelled `time_limit` must not
    /// silently mean "no limit").
    public static let fieldNames = Set(CodingKeys.allCases.map(\.rawValue))

    enum CodingKeys: String, CodingKey, CaseIterable {
        case command, directory, environment, owner, name, kind, gpus
        case gpuMemory = "gpu_memory", timeLimit = "time_limit_ms", expectedDuration = "expected_duration_ms"
        case priority, costLimit = "cost_limit", after, offPeak = "off_peak"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        command = try c.decode([String].self, forKey: .command)
        directory = try c.decodeIfPresent(String.self, forKey: .directory) ?? "/"
        environment = try c.decodeIfPresent([String: String].self, forKey: .environment) ?? [:]
        owner = try c.decodeIfPresent(String.self, forKey: .owner) ?? "unknown"
        name = try c.decodeIfPresent(String.self, forKey: .name)
        kind = try c.decodeIfPresent(String.self, forKey: .kind)
        gpus = try c.decodeIfPresent(Int.self, forKey: .gpus) ?? 0
        gpuMemory = try c.decodeIfPresent(Int64.self, forKey: .gpuMemory) ?? 0
        timeLimit = try c.decodeIfPresent(Int64.self, forKey: .timeLimit)
        expectedDuration = try c.decodeIfPresent(Int64.self, forKey: .expectedDuration)
        priority = try c.decodeIfPresent(TaskPriority.self, forKey: .priority) ?? .normal
        costLimit = try c.decodeIfPresent(Double.self, forKey: .costLimit)
        after = try c.decodeIfPresent([Dependency].self, forKey: .after) ?? []
        offPeak = try c.decodeIfPresent(Bool.self, forKey: .offPeak) ?? false
    }
}

/// A priority class or a number from 0 to 100 (low 25, normal 50, high 75, urgent 100).
public struct TaskPriority: Codable, Sendable, Equatable, CustomStringConvertible {
    public var value: Int

    public static let low = TaskPriority(value: 25)
    public static let normal = TaskPriority(value: 50)
    public static let high = TaskPriority(value: 75)
    public static let urgent = TaskPriority(value: 100)

    public init(value: Int) { self.value = min(max(value, 0), 100) }

    public init?(parsing text: String) {
        switch text.lowercased() {
        case "low": self = .low
        case "normal": self = .normal
        case "high": self = .high
        case "urgent": self = .urgent
        default:
            guard let number = Int(text), (0...100).contains(number) else { return nil }
            self.init(value: number)
        }
    }

    public var description: String {
        switch value {
        case 25: "low"
        case 50: "normal"
        case 75: "high"
        case 100: "urgent"
        default: String(value)
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int.self) {
            guard (0...100).contains(number) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "priority must be 0…100")
            }
            self.init(value: number)
        } else {
            let text = try container.decode(String.self)
            guard let parsed = TaskPriority(parsing: text) else {
                throw DecodingError.dataCorruptedError(in: container,
                    debugDescription: "priority must be low, normal, high, urgent or a number 0…100, not \"\(text)\"")
            }
            self = parsed
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

/// Slurm's `afterok` and `afterany`.
public struct Dependency: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Condition: String, Codable, Sendable { case ok, any }
    public var task: Int64
    public var condition: Condition

    public init(task: Int64, condition: Condition) {
        self.task = task
        self.condition = condition
    }

    /// `ID` (after ok), `ok:ID` or `any:ID`.
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        if parts.count == 1, let id = Int64(parts[0]) { self.init(task: id, condition: .ok); return }
        guard parts.count == 2, let condition = Condition(rawValue: parts[0]), let id = Int64(parts[1]) else { return nil }
        self.init(task: id, condition: condition)
    }

    public var description: String { "after\(condition.rawValue):\(task)" }
}

public enum TaskState: String, Codable, Sendable, CaseIterable {
    /// Waiting: in the queue (resources limited) or on the wait list (dependencies, off-peak, cost).
    case queued
    /// Written before the process is spawned, so a crash in between never starts it twice.
    case starting
    case running
    /// SIGSTOP: the process keeps its GPU memory, so the ledger keeps its reservation.
    case paused
    case succeeded
    case failed
    case cancelled
    /// Ended by Vigil: time limit, cost limit, or a dependency that can no longer be met.
    case stopped
    /// Its process was gone when the daemon came back.
    case lost

    public var isFinished: Bool {
        switch self {
        case .succeeded, .failed, .cancelled, .stopped, .lost: true
        case .queued, .starting, .running, .paused: false
        }
    }

    /// Holds resources in the ledger.
    public var isActive: Bool { self == .starting || self == .running || self == .paused }
}

/// A task as Vigil keeps it: the spec and everything that happened to it.
public struct TaskRecord: Codable, Sendable, Equatable {
    public var id: Int64
    public var spec: TaskSpec
    public var state: TaskState
    public var submitted: Timestamp
    public var started: Timestamp?
    public var ended: Timestamp?
    /// UUIDs and indices of the GPUs it was given.
    public var gpuUUIDs: [String] = []
    public var gpuIndices: [Int] = []
    public var pid: Int32?
    /// The process's start time in clock ticks since boot (/proc/PID/stat field 22): pid reuse guard.
    public var pidStartTicks: UInt64?
    public var exitCode: Int32?
    public var signal: Int32?
    /// Why it ended, or why it was stopped, in words.
    public var reason: String?
    /// Milliseconds spent paused (not counted against the time limit).
    public var pausedTotal: Int64 = 0
    public var pausedAt: Timestamp?
    public var cost: Double = 0
    public var energyJoules: Double = 0
    /// The part of `cost` accrued inside off-peak windows.
    public var offPeakCost: Double?
    /// Seconds its GPUs' utilisation was sampled while it ran, and the sum of utilisation × seconds
    /// (mean utilisation = busy / observed).
    public var observedSeconds: Double?
    public var busySeconds: Double?
    /// The most GPU memory its processes used on one GPU.
    public var peakGPUMemory: Int64?

    public init(id: Int64, spec: TaskSpec, submitted: Timestamp) {
        self.id = id
        self.spec = spec
        self.state = .queued
        self.submitted = submitted
    }

    public var displayName: String { spec.name ?? spec.command.joined(separator: " ") }

    /// Time it has run, pauses excluded.
    /// What is out of range in this stored record (its spec, its times), or nil.
    public var rangeProblem: String? {
        if let problem = spec.rangeProblem { return problem }
        let times: [(String, Timestamp?)] = [("submitted", submitted), ("started", started), ("ended", ended), ("paused_at", pausedAt)]
        for (field, time) in times {
            if let time, !(0...Bounds.maxTimestamp).contains(time) { return "\(field) is \(time), outside \(Bounds.timestampRange) in ms" }
        }
        guard (0...Bounds.maxDuration).contains(pausedTotal) else { return "paused_total is \(pausedTotal), outside \(Bounds.durationRange)" }
        if !(cost.isFinite && cost >= 0) { return "cost is \(cost)" }
        return nil
    }

    /// Brings a broken record's times into range so that every view and sum of it is safe.
    mutating func repairTimes(now: Timestamp) {
        func fix(_ time: Timestamp?) -> Timestamp? { time.map { min(max($0, 0), now) } }
        submitted = fix(submitted) ?? now
        started = fix(started)
        ended = fix(ended)
        pausedAt = nil
        pausedTotal = min(max(pausedTotal, 0), Bounds.maxDuration)
        if !(cost.isFinite && cost >= 0) { cost = 0 }
        spec.timeLimit = spec.timeLimit.map { min(max($0, 1), Bounds.maxDuration) }
        spec.expectedDuration = spec.expectedDuration.map { min(max($0, 1), Bounds.maxDuration) }
        spec.gpus = min(max(spec.gpus, 0), TaskSpec.maxGPUs)
        spec.gpuMemory = min(max(spec.gpuMemory, 0), Bounds.maxMemoryBytes)
        if let limit = spec.costLimit, !(limit.isFinite && limit >= 0 && limit <= 1e15) { spec.costLimit = nil }
    }

    public func runTime(at now: Timestamp) -> Int64 {
        guard let started else { return 0 }
        let end = ended ?? now
        let pausedNow = pausedAt.map { end - $0 } ?? 0
        return max(0, end - started - pausedTotal - pausedNow)
    }

    enum CodingKeys: String, CodingKey {
        case id, spec, state, submitted, started, ended
        case gpuUUIDs = "gpu_uuids", gpuIndices = "gpu_indices", pid, pidStartTicks = "pid_start_ticks"
        case exitCode = "exit_code", signal, reason, pausedTotal = "paused_ms", pausedAt = "paused_at"
        case cost, energyJoules = "energy_joules", offPeakCost = "off_peak_cost", observedSeconds = "observed_seconds"
        case busySeconds = "busy_seconds", peakGPUMemory = "peak_gpu_memory"
    }

    /// Mean utilisation of its GPUs while it ran; nil before any sample.
    public var meanUtilization: Double? {
        guard let observedSeconds, observedSeconds > 0 else { return nil }
        return (busySeconds ?? 0) / observedSeconds
    }
}
