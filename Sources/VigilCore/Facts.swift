import Foundation

/// What recommendation and indicator scripts, and the reports, know about one task: plain figures the
/// allocator keeps, so the rules side needs no knowledge of the allocator itself.
public struct TaskFacts: Codable, Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var owner: String
    /// The prediction key: `--kind`, else the program's name.
    public var kind: String
    /// queued, starting, running, paused, succeeded, failed, cancelled, stopped, lost.
    public var state: String
    public var priority: Int
    public var offPeak: Bool
    public var gpus: Int
    /// GPU indices it was given.
    public var gpuIndices: [Int]
    public var gpuModel: String?
    /// Declared GPU memory per GPU, bytes (0: whole GPUs).
    public var gpuMemoryDeclared: Int64
    /// The most GPU memory its processes used on one GPU, bytes; nil when never observed.
    public var gpuMemoryPeak: Int64?
    /// Mean utilisation of its GPUs while it ran (0–1); nil when never observed.
    public var meanUtilization: Double?
    public var submitted: Timestamp
    public var started: Timestamp?
    public var ended: Timestamp?
    /// Seconds run, pauses excluded.
    public var runSeconds: Double
    /// Seconds from submit to start (or to now while queued).
    public var waitSeconds: Double
    public var gpuHours: Double
    public var cost: Double
    /// The part of `cost` accrued inside off-peak windows.
    public var offPeakCost: Double
    public var timeLimitSeconds: Double?
    /// Median run time of the last finished tasks of the same kind (itself excluded); nil without any.
    public var similarMedianSeconds: Double?
    public var similarCount: Int
    /// The scheduler's estimate of its end (running or queued), when it has one.
    public var estimatedEnd: Timestamp?

    public init(id: Int64, name: String, owner: String, kind: String, state: String, priority: Int, offPeak: Bool, gpus: Int,
                gpuIndices: [Int], gpuModel: String?, gpuMemoryDeclared: Int64, gpuMemoryPeak: Int64?,
                meanUtilization: Double?, submitted: Timestamp, started: Timestamp?, ended: Timestamp?,
                runSeconds: Double, waitSeconds: Double, gpuHours: Double, cost: Double, offPeakCost: Double,
                timeLimitSeconds: Double?, similarMedianSeconds: Double? = nil, similarCount: Int = 0,
                estimatedEnd: Timestamp? = nil) {
        self.id = id
        self.name = name
        self.owner = owner
        self.kind = kind
        self.state = state
        self.priority = priority
        self.offPeak = offPeak
        self.gpus = gpus
        self.gpuIndices = gpuIndices
        self.gpuModel = gpuModel
        self.gpuMemoryDeclared = gpuMemoryDeclared
        self.gpuMemoryPeak = gpuMemoryPeak
        self.meanUtilization = meanUtilization
        self.submitted = submitted
        self.started = started
        self.ended = ended
        self.runSeconds = runSeconds
        self.waitSeconds = waitSeconds
        self.gpuHours = gpuHours
        self.cost = cost
        self.offPeakCost = offPeakCost
        self.timeLimitSeconds = timeLimitSeconds
        self.similarMedianSeconds = similarMedianSeconds
        self.similarCount = similarCount
        self.estimatedEnd = estimatedEnd
    }

    public var isFinished: Bool { ["succeeded", "failed", "cancelled", "stopped", "lost"].contains(state) }
    public var isActive: Bool { ["starting", "running", "paused"].contains(state) }

    enum CodingKeys: String, CodingKey {
        case id, name, owner, kind, state, priority, offPeak = "off_peak", gpus, gpuIndices = "gpu_indices"
        case gpuModel = "gpu_model", gpuMemoryDeclared = "gpu_memory_declared", gpuMemoryPeak = "gpu_memory_peak"
        case meanUtilization = "mean_utilization", submitted, started, ended, runSeconds = "run_seconds"
        case waitSeconds = "wait_seconds", gpuHours = "gpu_hours", cost, offPeakCost = "off_peak_cost"
        case timeLimitSeconds = "time_limit_seconds", similarMedianSeconds = "similar_median_seconds"
        case similarCount = "similar_count", estimatedEnd = "estimated_end"
    }

    /// Fills `similarMedianSeconds` and `similarCount` of each task from the last `window` finished tasks of
    /// its kind that succeeded, the task itself excluded.
    public static func withSimilar(_ tasks: [TaskFacts], window: Int = 20) -> [TaskFacts] {
        var byKind: [String: [(id: Int64, ended: Timestamp, seconds: Double)]] = [:]
        for task in tasks where task.state == "succeeded" {
            byKind[task.kind, default: []].append((task.id, task.ended ?? 0, task.runSeconds))
        }
        for key in byKind.keys { byKind[key]!.sort { $0.ended > $1.ended } }
        return tasks.map { task in
            var task = task
            let others = (byKind[task.kind] ?? []).lazy.filter { $0.id != task.id }.prefix(window).map(\.seconds)
            task.similarCount = others.count
            task.similarMedianSeconds = others.isEmpty ? nil : Self.median(Array(others))
            return task
        }
    }

    public static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}

/// One GPU as the allocator sees it now.
public struct GPUFacts: Codable, Sendable, Equatable {
    public var gpu: String
    public var uuid: String
    public var model: String
    /// Price of one hour of the whole GPU at the model's rate (energy not included).
    public var pricePerHour: Double
    public var memoryTotal: Int64
    /// Tasks holding it now.
    public var tasks: Int
    /// When a task last held it (ms), nil when never within the kept history.
    public var lastTaskEnded: Timestamp?

    public init(gpu: String, uuid: String, model: String, pricePerHour: Double, memoryTotal: Int64, tasks: Int, lastTaskEnded: Timestamp?) {
        self.gpu = gpu
        self.uuid = uuid
        self.model = model
        self.pricePerHour = pricePerHour
        self.memoryTotal = memoryTotal
        self.tasks = tasks
        self.lastTaskEnded = lastTaskEnded
    }

    enum CodingKeys: String, CodingKey {
        case gpu, uuid, model, pricePerHour = "price_per_hour", memoryTotal = "memory_total", tasks, lastTaskEnded = "last_task_ended"
    }
}

/// One result of one stored benchmark run.
public struct BenchFacts: Codable, Sendable, Equatable {
    public var run: String
    public var time: Timestamp
    public var host: String
    public var quick: Bool
    public var name: String
    public var suite: String
    public var value: Double
    public var unit: String
    public var higherIsBetter: Bool
    public var score: Double

    public init(run: String, time: Timestamp, host: String, quick: Bool, name: String, suite: String, value: Double,
                unit: String, higherIsBetter: Bool, score: Double) {
        self.run = run
        self.time = time
        self.host = host
        self.quick = quick
        self.name = name
        self.suite = suite
        self.value = value
        self.unit = unit
        self.higherIsBetter = higherIsBetter
        self.score = score
    }

    enum CodingKeys: String, CodingKey {
        case run, time, host, quick, name, suite, value, unit, higherIsBetter = "higher_is_better", score
    }
}

/// The outcome of replaying recent tasks through the simulator under one strategy.
public struct ReplayFacts: Codable, Sendable, Equatable {
    public var strategy: String
    public var backfill: Bool
    public var jobs: Int
    public var meanJCTSeconds: Double
    public var meanWaitSeconds: Double
    public var p95WaitSeconds: Double
    public var utilization: Double
    public var makespanSeconds: Double

    public init(strategy: String, backfill: Bool, jobs: Int, meanJCTSeconds: Double, meanWaitSeconds: Double,
                p95WaitSeconds: Double, utilization: Double, makespanSeconds: Double) {
        self.strategy = strategy
        self.backfill = backfill
        self.jobs = jobs
        self.meanJCTSeconds = meanJCTSeconds
        self.meanWaitSeconds = meanWaitSeconds
        self.p95WaitSeconds = p95WaitSeconds
        self.utilization = utilization
        self.makespanSeconds = makespanSeconds
    }

    enum CodingKeys: String, CodingKey {
        case strategy, backfill, jobs, meanJCTSeconds = "mean_jct_seconds", meanWaitSeconds = "mean_wait_seconds"
        case p95WaitSeconds = "p95_wait_seconds", utilization, makespanSeconds = "makespan_seconds"
    }
}

/// Prices scripts need to put a figure on a saving.
public struct PricingFacts: Codable, Sendable, Equatable {
    public var currency: String
    public var defaultGPUHour: Double
    public var kwh: Double
    public var offPeakFactor: Double
    /// Whether any off-peak window is configured.
    public var hasOffPeak: Bool

    public init(currency: String, defaultGPUHour: Double, kwh: Double, offPeakFactor: Double, hasOffPeak: Bool) {
        self.currency = currency
        self.defaultGPUHour = defaultGPUHour
        self.kwh = kwh
        self.offPeakFactor = offPeakFactor
        self.hasOffPeak = hasOffPeak
    }

    enum CodingKeys: String, CodingKey {
        case currency, defaultGPUHour = "default_gpu_hour", kwh, offPeakFactor = "off_peak_factor", hasOffPeak = "has_off_peak"
    }
}

/// Where scripts read the allocator's history, GPUs, prices and benchmark results. `vigil serve` wires
/// the allocator and the database; tests give recorded facts. Calls come from the rule evaluator's queue.
public protocol HistorySource: Sendable {
    /// Unfinished tasks and those that ended at or after `since`, oldest first.
    func tasks(since: Timestamp) -> [TaskFacts]
    func gpus() -> [GPUFacts]
    func pricing() -> PricingFacts
    /// Benchmark results of runs at or after `since`, oldest first.
    func benchmarks(since: Timestamp) -> [BenchFacts]
    /// Replays the GPU tasks submitted since `since` under `strategy` (nil: the live policy's).
    func replay(since: Timestamp, strategy: String?, backfill: Bool?) throws -> ReplayFacts
}
