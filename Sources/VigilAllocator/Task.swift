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

    /// The key that groups runs of "the same" task for prediction.
    public var predictionKey: String {
        if let kind, !kind.isEmpty { return kind }
        return command.first.map { ($0 as NSString).lastPathComponent } ?? ""
    }

    enum CodingKeys: String, CodingKey {
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
