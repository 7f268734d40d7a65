import Foundation
import VigilCore

/// A job of a replayed trace.
public struct TraceJob: Sendable, Equatable {
    public var id: Int64
    public var gpus: Int
    /// Milliseconds from the start of the trace.
    public var submit: Int64
    /// Milliseconds it runs once started.
    public var duration: Int64
    public var kind: String
    public var owner: String

    public init(id: Int64, gpus: Int, submit: Int64, duration: Int64, kind: String, owner: String) {
        self.id = id
        self.gpus = gpus
        self.submit = submit
        self.duration = duration
        self.kind = kind
        self.owner = owner
    }

    /// Reads a CSV trace with a header: `job_id`, `num_gpu`, `submit_time` and `duration` (seconds) are
    /// required; `model_name` (the kind) and `user` are used when present. Tiresias' traces have this shape.
    public static func parseCSV(_ text: String, file: String) throws -> [TraceJob] {
        var lines = text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        guard !lines.isEmpty else { throw PolicyError("\(file): the trace is empty") }
        let header = lines.removeFirst().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        func column(_ name: String) -> Int? { header.firstIndex(of: name) }
        guard let id = column("job_id"), let gpus = column("num_gpu"), let submit = column("submit_time"),
              let duration = column("duration") else {
            throw PolicyError("\(file):1: the header needs job_id, num_gpu, submit_time and duration, found \(header.joined(separator: ","))")
        }
        let kind = column("model_name"), user = column("user")
        return try lines.enumerated().map { offset, line in
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            // Ids, GPU counts and seconds: a trace that holds more than 1e12 of any is not a trace.
            func number(_ index: Int, _ name: String) throws -> Double {
                guard index < fields.count, let value = Double(fields[index]), value >= 0, value <= 1e12 else {
                    throw PolicyError("\(file):\(offset + 2): \(name) must be a number ≥ 0")
                }
                return value
            }
            return TraceJob(id: Int64(try number(id, "job_id")), gpus: Int(try number(gpus, "num_gpu")),
                            submit: Int64(try number(submit, "submit_time") * 1000), duration: Int64(try number(duration, "duration") * 1000),
                            kind: kind.flatMap { $0 < fields.count ? fields[$0] : nil } ?? "",
                            owner: user.flatMap { $0 < fields.count ? fields[$0] : nil } ?? "trace")
        }
    }
}

/// Figures of one replay (reference/scheduling.md §10).
public struct SimulationReport: Codable, Sendable, Equatable {
    public var policy: String
    public var jobs: Int
    public var averageJCT: Double
    public var p50JCT: Double
    public var p95JCT: Double
    public var makespan: Double
    /// Allocated GPU-seconds ÷ (GPUs × makespan).
    public var utilization: Double
    public var p50Wait: Double
    public var p95Wait: Double
    public var cost: Double
    public var passes: Int
    /// Mean wall time of one scheduling pass, microseconds.
    public var meanPassMicroseconds: Double

    enum CodingKeys: String, CodingKey {
        case policy, jobs, averageJCT = "average_jct_seconds", p50JCT = "p50_jct_seconds", p95JCT = "p95_jct_seconds"
        case makespan = "makespan_seconds", utilization, p50Wait = "p50_wait_seconds", p95Wait = "p95_wait_seconds"
        case cost, passes, meanPassMicroseconds = "mean_pass_microseconds"
    }
}

/// Replays a trace through the planner in virtual time: no processes, the same placement code.
public struct Simulator {
    public var gpus: [GPUSlot]
    public var costs: CostModel

    public init(gpuCount: Int, costs: CostModel, model: String = "simulated GPU", memory: Int64 = 80 << 30) {
        gpus = (0..<gpuCount).map { index in
            var slot = GPUSlot(index: index, uuid: "GPU-sim-\(index)", model: model, memoryTotal: memory)
            slot.clockSMMax = 1980
            slot.clockSM = 1980
            slot.pricePerHour = costs.gpuHourRate(model: model)
            return slot
        }
        self.costs = costs
    }

    /// Runs `jobs` under `policy`; `scorer` is the policy script's score (or `NoScorer`).
    public func run(_ jobs: [TraceJob], policy: Policy, name: String, scorer: inout some PlacementScorer) -> SimulationReport {
        let planner = Planner(policy: policy, gpus: gpus)
        var pending = jobs.sorted { ($0.submit, $0.id) < ($1.submit, $1.id) }[...]
        var waiting: [Int64: PlanTask] = [:]
        var running: [Int64: (task: ActiveTask, job: TraceJob, planned: Int64)] = [:]
        var history = DurationHistory()
        var fairShare = FairShare(halfLife: policy.fairShareHalfLife, at: 0)
        var started: [Int64: Int64] = [:]
        var finished: [Int64: Int64] = [:]
        let byID = Dictionary(jobs.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var time: Int64 = pending.first?.submit ?? 0
        var passes = 0
        var passNanoseconds: UInt64 = 0
        var cost = 0.0
        var unplaceable: Set<Int64> = []

        while !pending.isEmpty || !waiting.isEmpty || !running.isEmpty {
            // Completions, then arrivals, at this instant.
            for (id, entry) in running where entry.task.expectedEnd <= time {
                running[id] = nil
                finished[id] = time
                history.record(entry.job.kind, entry.job.duration)
                fairShare.charge(entry.job.owner, gpuMilliseconds: Double(entry.job.gpus) * Double(entry.job.duration - entry.planned), at: time)
                cost += Double(entry.job.gpus) * Double(entry.job.duration) / 3_600_000 * costs.gpuHourRate(model: gpus.first?.model ?? "")
            }
            while let next = pending.first, next.submit <= time {
                pending.removeFirst()
                if Ledger.neverFits(gpus: next.gpus, memory: 0, on: gpus) != nil {
                    unplaceable.insert(next.id)
                    continue
                }
                var spec = TaskSpec(command: [next.kind], directory: "/", owner: next.owner)
                spec.kind = next.kind
                let (duration, _) = history.predict(spec, defaultDuration: policy.defaultDuration)
                waiting[next.id] = PlanTask(id: next.id, owner: next.owner, submitted: next.submit, gpus: next.gpus,
                                            gpuMemory: 0, priority: TaskPriority.normal.value, duration: duration)
            }
            if !waiting.isEmpty {
                // Durations of waiting tasks follow the history as it grows.
                for (id, task) in waiting {
                    var spec = TaskSpec(command: [byID[id]!.kind], directory: "/", owner: task.owner)
                    spec.kind = byID[id]!.kind
                    waiting[id]!.duration = history.predict(spec, defaultDuration: policy.defaultDuration).0
                }
                let began = DispatchTime.now().uptimeNanoseconds
                fairShare.decay(to: time)
                let (ordered, _) = planner.order(Array(waiting.values), now: time, fairShare: fairShare)
                let result = planner.pass(now: time, active: running.values.map { entry in
                    var task = entry.task
                    task.expectedEnd = ActiveTask.expectedEnd(started: started[entry.task.id]!, planned: entry.planned, now: time)
                    return task
                }, ordered: ordered, scorer: &scorer)
                passNanoseconds += DispatchTime.now().uptimeNanoseconds - began
                passes += 1
                for placement in result.placements {
                    let task = waiting.removeValue(forKey: placement.task)!
                    let job = byID[placement.task]!
                    started[job.id] = time
                    fairShare.charge(job.owner, gpuMilliseconds: Double(job.gpus) * Double(task.duration), at: time)
                    running[job.id] = (ActiveTask(id: job.id, gpus: placement.gpus, gpuMemory: 0, expectedEnd: time + job.duration), job, task.duration)
                }
            }
            // The next event.
            var next: Int64? = pending.first?.submit
            if let end = running.values.map(\.task.expectedEnd).min() { next = min(next ?? end, end) }
            if policy.strategy == .batch, let close = waiting.values.map({ planner.batchCloses($0.submitted) }).filter({ $0 > time }).min() {
                next = min(next ?? close, close)
            }
            // Nothing left that could change the picture: whatever still waits never fits.
            guard let next, next > time else { break }
            time = next
        }

        let done = jobs.filter { finished[$0.id] != nil }
        let jct = done.map { Double(finished[$0.id]! - $0.submit) / 1000 }
        let waits = done.map { Double(started[$0.id]! - $0.submit) / 1000 }
        let first = done.map(\.submit).min() ?? 0
        let last = done.map { finished[$0.id]! }.max() ?? first
        let makespan = Double(last - first) / 1000
        let busy = done.reduce(0.0) { $0 + Double($1.gpus) * Double($1.duration) / 1000 }
        return SimulationReport(
            policy: name, jobs: done.count, averageJCT: jct.isEmpty ? 0 : jct.reduce(0, +) / Double(jct.count),
            p50JCT: Self.quantile(jct, 0.5), p95JCT: Self.quantile(jct, 0.95), makespan: makespan,
            utilization: makespan > 0 ? busy / (Double(gpus.count) * makespan) : 0,
            p50Wait: Self.quantile(waits, 0.5), p95Wait: Self.quantile(waits, 0.95), cost: cost,
            passes: passes, meanPassMicroseconds: passes > 0 ? Double(passNanoseconds) / Double(passes) / 1000 : 0)
    }

    /// Nearest-rank quantile.
    static func quantile(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let rank = Int((q * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }
}
