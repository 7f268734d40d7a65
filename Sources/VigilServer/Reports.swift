import Foundation
import VigilAllocator
import VigilBench
import VigilCore
import VigilRules
import VigilState
import VigilStore

/// `vigil.history` in the daemon: the allocator's tasks, GPUs and prices, this database's benchmark runs,
/// and replays through the allocator's simulator.
public struct AllocatorHistory: HistorySource {
    let allocator: Allocator
    let database: StateDatabase

    public init(allocator: Allocator, database: StateDatabase) {
        self.allocator = allocator
        self.database = database
    }

    public func tasks(since: Timestamp) -> [TaskFacts] { allocator.facts(since: since) }
    public func gpus() -> [GPUFacts] { allocator.gpuFacts() }
    public func pricing() -> PricingFacts { allocator.pricing }

    public func benchmarks(since: Timestamp) -> [BenchFacts] {
        let runs = (try? BenchHistory(database: database).runs(limit: 1000)) ?? []
        return runs.filter { $0.time >= since }.sorted { $0.time < $1.time }.flatMap { run in
            run.results.filter { $0.skipped == nil }.map { result in
                BenchFacts(run: run.id, time: run.time, host: run.facts.hostname, quick: run.quick, name: result.name,
                           suite: result.suite.rawValue, value: result.value, unit: result.unit,
                           higherIsBetter: result.higherIsBetter, score: result.score)
            }
        }
    }

    public func replay(since: Timestamp, strategy: String?, backfill: Bool?) throws -> ReplayFacts {
        var chosen: Policy.Strategy?
        if let strategy {
            guard let parsed = Policy.Strategy(rawValue: strategy) else {
                throw AllocatorError(.invalid, "strategy must be one of \(Policy.Strategy.allCases.map(\.rawValue).joined(separator: ", ")), got \(strategy)")
            }
            chosen = parsed
        }
        return allocator.replay(since: since, strategy: chosen, backfill: backfill)
    }
}

/// The guide's status report: what runs, what it costs, when it will be done, how the host is used,
/// the indicators, firing alerts and the best recommendations.
public struct StatusReport: Codable, Sendable {
    public struct Usage: Codable, Sendable {
        public var gpus: Int
        public var busyGPUs: Int
        /// Mean utilisation of the GPUs now (0–1); nil without GPUs.
        public var gpuUtilization: Double?
        public var gpuMemoryUsed: Double
        public var gpuMemoryTotal: Double
        /// Share of CPU time not idle over the last minute (0–1).
        public var cpuUtilization: Double?
        public var memoryUsed: Double?
        public var memoryTotal: Double?

        enum CodingKeys: String, CodingKey {
            case gpus, busyGPUs = "busy_gpus", gpuUtilization = "gpu_utilization", gpuMemoryUsed = "gpu_memory_used"
            case gpuMemoryTotal = "gpu_memory_total", cpuUtilization = "cpu_utilization", memoryUsed = "memory_used", memoryTotal = "memory_total"
        }
    }

    public struct TaskLine: Codable, Sendable {
        public var task: TaskFacts
        public var indicators: [IndicatorReading]
    }

    public struct AlertLine: Codable, Sendable {
        public var name: String
        public var severity: String
        public var summary: String
        public var labels: [String: String]
        public var since: Timestamp?
    }

    public var generatedAt: Timestamp
    public var host: String
    public var activeJobs: Int
    public var queuedJobs: Int
    public var finishedToday: Int
    public var costPerHour: Double
    public var costToday: Double
    public var currency: String
    /// When the last active or queued task is expected to end.
    public var estimatedCompletion: Timestamp?
    public var usage: Usage
    public var indicators: [IndicatorReading]
    public var tasks: [TaskLine]
    public var alerts: [AlertLine]
    public var recommendations: [Recommendation]
    public var indicatorErrors: [String]

    enum CodingKeys: String, CodingKey {
        case generatedAt = "generated_at", host, activeJobs = "active_jobs", queuedJobs = "queued_jobs"
        case finishedToday = "finished_today", costPerHour = "cost_per_hour", costToday = "cost_today", currency
        case estimatedCompletion = "estimated_completion", usage, indicators, tasks, alerts, recommendations
        case indicatorErrors = "indicator_errors"
    }
}

/// Cost over a window, grouped by owner, task, GPU or day.
public struct CostReport: Codable, Sendable {
    public struct Row: Codable, Sendable, Equatable {
        public var key: String
        /// A name for the key: the task's name, the GPU's model.
        public var label: String
        public var cost: Double
        public var gpuHours: Double
        public var tasks: Int
        /// Share of the window's total cost (0–1).
        public var share: Double

        enum CodingKeys: String, CodingKey { case key, label, cost, gpuHours = "gpu_hours", tasks, share }
    }

    public enum Grouping: String, Codable, Sendable, CaseIterable { case owner, task, gpu, day }

    /// First local day counted (YYYY-MM-DD).
    public var since: String
    public var by: Grouping
    public var currency: String
    public var total: Double
    public var gpuHours: Double
    public var rows: [Row]

    enum CodingKeys: String, CodingKey { case since, by, currency, total, gpuHours = "gpu_hours", rows }

    /// Groups cost rows; `names` gives task names, `models` GPU models by index. Largest cost first
    /// (by day: oldest first).
    public init(shares: [CostShareRow], since: String, by: Grouping, currency: String, names: [Int64: String], models: [String: String]) {
        self.since = since
        self.by = by
        self.currency = currency
        var groups: [String: (cost: Double, gpuSeconds: Double, tasks: Set<Int64>)] = [:]
        for share in shares {
            let key = switch by {
            case .owner: share.owner
            case .task: String(share.task)
            case .gpu: share.gpu.isEmpty ? "cpu" : share.gpu
            case .day: share.day
            }
            groups[key, default: (0, 0, [])].cost += share.cost
            groups[key, default: (0, 0, [])].gpuSeconds += share.gpuSeconds
            groups[key, default: (0, 0, [])].tasks.insert(share.task)
        }
        total = groups.values.reduce(0) { $0 + $1.cost }
        gpuHours = groups.values.reduce(0) { $0 + $1.gpuSeconds } / 3600
        let total = total
        rows = groups.map { key, value in
            let label: String = switch by {
            case .task: key == "0" ? "(before per-task accounting)" : names[Int64(key) ?? -1] ?? "task \(key)"
            case .gpu: key == "cpu" ? "CPU-only tasks" : models[key] ?? ""
            case .owner, .day: ""
            }
            return Row(key: key, label: label, cost: value.cost, gpuHours: value.gpuSeconds / 3600,
                       tasks: value.tasks.subtracting([0]).count, share: total > 0 ? value.cost / total : 0)
        }.sorted { by == .day ? $0.key < $1.key : ($0.cost, $1.key) > ($1.cost, $0.key) }
    }
}

/// One task beside the median of similar finished tasks (same kind, succeeded).
public struct TaskReport: Codable, Sendable {
    public struct Similar: Codable, Sendable {
        public var count: Int
        public var runSeconds: Double
        public var gpuHours: Double
        public var meanUtilization: Double?
        public var gpuMemoryPeak: Double?
        public var cost: Double

        enum CodingKeys: String, CodingKey {
            case count, runSeconds = "run_seconds", gpuHours = "gpu_hours", meanUtilization = "mean_utilization"
            case gpuMemoryPeak = "gpu_memory_peak", cost
        }
    }

    public var task: TaskFacts
    public var indicators: [IndicatorReading]
    /// Median of the last 20 similar tasks; nil when there are none.
    public var similar: Similar?
    public var currency: String

    /// The report of `task` among `all` (similar tasks: same kind, succeeded, the task itself excluded).
    public init(task: TaskFacts, all: [TaskFacts], indicators: [IndicatorReading], currency: String) {
        self.task = task
        self.indicators = indicators
        self.currency = currency
        let others = all.filter { $0.kind == task.kind && $0.state == "succeeded" && $0.id != task.id }
            .sorted { ($0.ended ?? 0) > ($1.ended ?? 0) }.prefix(20)
        guard !others.isEmpty else { similar = nil; return }
        func median(_ values: [Double]) -> Double? { values.isEmpty ? nil : TaskFacts.median(values) }
        similar = Similar(count: others.count, runSeconds: median(others.map(\.runSeconds)) ?? 0,
                          gpuHours: median(others.map(\.gpuHours)) ?? 0, meanUtilization: median(others.compactMap(\.meanUtilization)),
                          gpuMemoryPeak: median(others.compactMap(\.gpuMemoryPeak).map(Double.init)), cost: median(others.map(\.cost)) ?? 0)
    }
}

/// Builds the reports from the allocator, the rule engine and the store.
public struct ReportBuilder: Sendable {
    let allocator: Allocator
    let rules: RuleService?
    let store: MetricStore
    let clock: any WallClock

    public init(allocator: Allocator, rules: RuleService?, store: MetricStore, clock: any WallClock) {
        self.allocator = allocator
        self.rules = rules
        self.store = store
        self.clock = clock
    }

    static func startOfDay(_ time: Timestamp) -> Timestamp {
        var seconds = time_t(time / 1000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        parts.tm_hour = 0
        parts.tm_min = 0
        parts.tm_sec = 0
        return Timestamp(mktime(&parts)) * 1000
    }

    public func status() -> StatusReport {
        let now = clock.now()
        // Cost figures without `queue()`: its queue simulation would run twice with the forecast below.
        let spending = allocator.spending()
        let today = Self.startOfDay(now)
        let tasks = allocator.facts(since: today, forecast: true)
        let gpus = allocator.gpuFacts()
        let shown = tasks.filter { $0.isActive || $0.state == "queued" }
        let indicators = rules?.indicators(tasks: shown, gpus: gpus) ?? IndicatorReport()
        let snapshot = rules?.snapshot ?? RuleService.Snapshot()
        let firing = snapshot.alerts.filter { $0.state == .firing && $0.silencedBy.isEmpty && !$0.inhibited }
        return StatusReport(
            generatedAt: now, host: ProcessInfo.processInfo.hostName,
            activeJobs: tasks.filter(\.isActive).count, queuedJobs: tasks.filter { $0.state == "queued" }.count,
            finishedToday: tasks.filter { $0.isFinished && ($0.ended ?? 0) >= today }.count,
            costPerHour: spending.perHour, costToday: spending.today, currency: allocator.pricing.currency,
            estimatedCompletion: shown.compactMap(\.estimatedEnd).max(),
            usage: usage(gpus: gpus, at: now), indicators: indicators.host,
            tasks: shown.map { StatusReport.TaskLine(task: $0, indicators: indicators.tasks[$0.id] ?? []) },
            alerts: firing.map { alert in
                StatusReport.AlertLine(name: alert.rule, severity: alert.labels["severity"] ?? "",
                                       summary: alert.annotations["summary"] ?? "", labels: alert.labels, since: alert.firedAt)
            },
            recommendations: Array(snapshot.recommendations.prefix(5)), indicatorErrors: indicators.errors)
    }

    private func usage(gpus: [GPUFacts], at now: Timestamp) -> StatusReport.Usage {
        func values(_ name: String, _ matchers: [LabelMatcher] = []) -> [Double] {
            store.instant(SeriesSelector(name: name, matchers), at: now).map(\.value)
        }
        let utilization = values("gpu_utilization_ratio")
        let idle = store.evaluate(.rate, SeriesSelector(name: "node_cpu_seconds_total", [try! LabelMatcher("mode", .equal, "idle")]),
                                  range: 60_000, at: now).map(\.value)
        let memoryTotal = values("node_memory_MemTotal_bytes").first
        let memoryAvailable = values("node_memory_MemAvailable_bytes").first
        return StatusReport.Usage(
            gpus: gpus.count, busyGPUs: gpus.filter { $0.tasks > 0 }.count,
            gpuUtilization: utilization.isEmpty ? nil : utilization.reduce(0, +) / Double(utilization.count),
            gpuMemoryUsed: values("gpu_memory_used_bytes").reduce(0, +), gpuMemoryTotal: values("gpu_memory_total_bytes").reduce(0, +),
            cpuUtilization: idle.isEmpty ? nil : max(0, min(1, 1 - idle.reduce(0, +) / Double(idle.count))),
            memoryUsed: memoryTotal.flatMap { total in memoryAvailable.map { total - $0 } }, memoryTotal: memoryTotal)
    }

    public func cost(since: Timestamp, by: CostReport.Grouping) throws -> CostReport {
        let shares = try allocator.costShares(since: since)
        let names = Dictionary(allocator.facts(since: since).map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        let models = Dictionary(allocator.gpuFacts().map { ($0.gpu, $0.model) }, uniquingKeysWith: { a, _ in a })
        return CostReport(shares: shares, since: Allocator.day(since), by: by, currency: allocator.pricing.currency,
                          names: names, models: models)
    }

    public func task(_ id: Int64) throws -> TaskReport {
        let all = allocator.facts(since: 0)
        guard let task = all.first(where: { $0.id == id }) else {
            _ = try allocator.task(id)  // 404 when there is no such task at all
            throw AllocatorError(.notFound, "task \(id) ended before the kept history (allocator keeps 30 days in memory)")
        }
        let indicators = rules?.indicators(tasks: [task], gpus: allocator.gpuFacts())
        return TaskReport(task: task, all: all, indicators: indicators?.tasks[id] ?? [], currency: allocator.pricing.currency)
    }
}
