import Foundation
import Hummingbird
import VigilAllocator
import VigilCore
import VigilRules
import VigilStore

/// What `vigil top` draws, in one answer: the GPUs now, the processes and tasks on them, the host's CPU
/// and memory, and the firing alerts (`GET /api/v1/top`).
public struct TopSnapshot: Codable, Sendable {
    public struct GPU: Codable, Sendable {
        public var index: Int
        public var uuid: String
        public var model: String
        public var up: Bool
        public var utilization: Double?
        public var memoryUsed: Double?
        public var memoryTotal: Double?
        public var temperature: Double?
        public var power: Double?
        public var powerLimit: Double?
        public var clockSM: Double?

        enum CodingKeys: String, CodingKey {
            case index, uuid, model, up, utilization, memoryUsed = "memory_used", memoryTotal = "memory_total", temperature, power
            case powerLimit = "power_limit", clockSM = "clock_sm_hertz"
        }
    }

    public struct Process: Codable, Sendable {
        public var gpu: Int
        public var pid: Int
        public var user: String
        public var command: String
        public var memory: Double
        /// The task whose process group it belongs to, when Vigil started it.
        public var task: Int64?
    }

    public struct TaskLine: Codable, Sendable {
        public var id: Int64
        public var name: String
        public var owner: String
        public var state: String
        public var gpus: [Int]
        public var runSeconds: Double
        public var cost: Double

        enum CodingKeys: String, CodingKey { case id, name, owner, state, gpus, runSeconds = "run_seconds", cost }
    }

    public struct AlertLine: Codable, Sendable {
        public var name: String
        public var severity: String
        public var summary: String
    }

    public var time: Timestamp
    public var host: String
    public var cpuUtilization: Double?
    public var cpus: Int
    public var memoryUsed: Double?
    public var memoryTotal: Double?
    public var load1: Double?
    public var gpus: [GPU]
    public var processes: [Process]
    public var tasks: [TaskLine]
    public var queued: Int
    public var costPerHour: Double?
    public var currency: String?
    public var alerts: [AlertLine]

    enum CodingKeys: String, CodingKey {
        case time, host, cpuUtilization = "cpu_utilization", cpus, memoryUsed = "memory_used", memoryTotal = "memory_total", load1
        case gpus, processes, tasks, queued, costPerHour = "cost_per_hour", currency, alerts
    }

    /// Reads the store at `now`, and the allocator and rules when they run.
    public static func make(store: MetricStore, allocator: Allocator?, rules: RuleService?, at now: Timestamp) -> TopSnapshot {
        func byGPU(_ name: String, _ matchers: [LabelMatcher] = []) -> [Int: Double] {
            var out: [Int: Double] = [:]
            for sample in store.instant(SeriesSelector(name: name, matchers), at: now) {
                if let gpu = sample.labels["gpu"].flatMap({ Int($0) }) { out[gpu] = sample.value }
            }
            return out
        }
        func one(_ name: String) -> Double? { store.instant(SeriesSelector(name: name), at: now).first?.value }
        let utilization = byGPU("gpu_utilization_ratio"), used = byGPU("gpu_memory_used_bytes"), total = byGPU("gpu_memory_total_bytes")
        let temperature = byGPU("gpu_temperature_celsius"), power = byGPU("gpu_power_watts")
        let limit = byGPU("gpu_power_limit_watts", [try! LabelMatcher("kind", .equal, "enforced")])
        let clock = byGPU("gpu_clock_hertz", [try! LabelMatcher("clock", .equal, "sm")])
        let gpus = store.instant(SeriesSelector(name: "gpu_up"), at: now).compactMap { sample -> GPU? in
            guard let index = sample.labels["gpu"].flatMap({ Int($0) }) else { return nil }
            return GPU(index: index, uuid: sample.labels["uuid"] ?? "", model: sample.labels["model"] ?? "", up: sample.value > 0,
                       utilization: utilization[index], memoryUsed: used[index], memoryTotal: total[index], temperature: temperature[index],
                       power: power[index], powerLimit: limit[index], clockSM: clock[index])
        }.sorted { $0.index < $1.index }

        let active = allocator?.list(states: [.starting, .running, .paused]) ?? []
        let groups = Dictionary(active.compactMap { view in view.record.pid.map { ($0, view.record.id) } }, uniquingKeysWith: { a, _ in a })
        let processes = store.instant(SeriesSelector(name: "gpu_process_memory_bytes"), at: now).compactMap { sample -> Process? in
            guard let gpu = sample.labels["gpu"].flatMap({ Int($0) }), let pid = sample.labels["pid"].flatMap({ Int32($0) }) else { return nil }
            let group = getpgid(pid)
            return Process(gpu: gpu, pid: Int(pid), user: sample.labels["user"] ?? "", command: sample.labels["command"] ?? "",
                           memory: sample.value, task: group > 0 ? groups[group] : nil)
        }.sorted { ($0.gpu, -$0.memory) < ($1.gpu, -$1.memory) }

        let idle = store.evaluate(.rate, SeriesSelector(name: "node_cpu_seconds_total", [try! LabelMatcher("mode", .equal, "idle")]),
                                  range: 60_000, at: now).map(\.value)
        let memoryTotal = one("node_memory_MemTotal_bytes"), available = one("node_memory_MemAvailable_bytes")
        // The allocator publishes these each pass: no queue simulation for a view refreshed every second.
        let waiting = store.instant(SeriesSelector(name: "vigil_allocator_waiting_tasks"), at: now).reduce(0) { $0 + $1.value }
        let firing = (rules?.snapshot.alerts ?? []).filter { $0.state == .firing && $0.silencedBy.isEmpty && !$0.inhibited }
        return TopSnapshot(
            time: now, host: ProcessInfo.processInfo.hostName,
            cpuUtilization: idle.isEmpty ? nil : max(0, min(1, 1 - idle.reduce(0, +) / Double(idle.count))), cpus: idle.count,
            memoryUsed: memoryTotal.flatMap { total in available.map { total - $0 } }, memoryTotal: memoryTotal, load1: one("node_load1"),
            gpus: gpus, processes: processes,
            tasks: active.map { view in
                TaskLine(id: view.record.id, name: view.record.displayName, owner: view.record.spec.owner, state: view.record.state.rawValue,
                         gpus: view.record.gpuIndices, runSeconds: Double(view.runTime) / 1000, cost: view.record.cost)
            }.sorted { $0.id < $1.id },
            queued: Int(saturating: waiting), costPerHour: allocator == nil ? nil : one("vigil_allocator_cost_per_hour"),
            currency: allocator?.pricing.currency,
            alerts: firing.map { AlertLine(name: $0.rule, severity: $0.labels["severity"] ?? "", summary: $0.annotations["summary"] ?? "") })
    }
}
