import Foundation
import VigilCore

/// Why a task is not running, in Slurm's words (`squeue`'s NODELIST(REASON)).
public enum WaitReason: String, Codable, Sendable {
    /// Higher-priority work is ahead of it (or holds a reservation it would delay).
    case priority = "Priority"
    /// Not enough free GPUs or GPU memory.
    case resources = "Resources"
    /// Waiting for the tasks it depends on.
    case dependency = "Dependency"
    /// A dependency ended in a way that can never satisfy it.
    case dependencyNeverSatisfied = "DependencyNeverSatisfied"
    /// Off-peak task outside an off-peak window.
    case beginTime = "BeginTime"
    /// Gathered by the batch strategy until its window closes.
    case batchWindow = "BatchWindow"
    /// Its predicted cost is above its cost limit.
    case costLimit = "CostLimit"
    /// The allocator is drained: nothing new starts.
    case drained = "Drained"
    /// More GPUs or memory than this host has: never fits (refused at submit; kept for tasks the host outgrew).
    case neverFits = "NeverFits"
}

/// A waiting task as the planner sees it.
public struct PlanTask: Sendable {
    public var id: Int64
    public var owner: String
    public var submitted: Timestamp
    public var gpus: Int
    /// Per GPU; 0 means whole GPUs.
    public var gpuMemory: Int64
    public var priority: Int
    /// Planned run time (history, declaration, limit or default).
    public var duration: Int64
    /// Not placeable before this time (off-peak window, a dependency's predicted end in a forecast).
    public var notBefore: Timestamp?
    /// Set when something other than resources holds it (dependency, cost limit…).
    public var blocked: WaitReason?
    /// Unfinished tasks it waits for (the forecast releases it when they end there).
    public var dependsOn: [Int64] = []

    public init(id: Int64, owner: String, submitted: Timestamp, gpus: Int, gpuMemory: Int64, priority: Int, duration: Int64) {
        self.id = id
        self.owner = owner
        self.submitted = submitted
        self.gpus = gpus
        self.gpuMemory = gpuMemory
        self.priority = priority
        self.duration = duration
    }
}

/// A task holding resources: the ledger's view.
public struct ActiveTask: Sendable {
    public var id: Int64
    public var gpus: [Int]
    /// Per GPU, max(declared, observed); 0 means whole GPUs.
    public var gpuMemory: Int64
    public var expectedEnd: Timestamp

    public init(id: Int64, gpus: [Int], gpuMemory: Int64, expectedEnd: Timestamp) {
        self.id = id
        self.gpus = gpus
        self.gpuMemory = gpuMemory
        self.expectedEnd = expectedEnd
    }

    /// When a task that started at `started` with `planned` run time is expected to end, seen at `now`.
    /// One that has outrun its prediction is expected to run as long again as it has (it is likely one
    /// of the long ones), never to end this instant. `paused` time does not count as running.
    public static func expectedEnd(started: Timestamp, planned: Int64, now: Timestamp, paused: Int64 = 0) -> Timestamp {
        let ran = max(0, now - started - paused)
        return started + paused + (ran < planned ? planned : 2 * ran)
    }
}

/// GPU memory reserved by declaration: what each GPU has promised, never what happens to be free this second.
public struct Ledger: Sendable {
    public private(set) var gpus: [GPUSlot]
    /// Bytes promised per GPU (by position in `gpus`).
    public private(set) var reserved: [Int64]
    public private(set) var tasks: [Int]
    /// A whole-GPU task holds it.
    public private(set) var exclusive: [Bool]
    let tasksPerGPU: Int

    public init(gpus: [GPUSlot], tasksPerGPU: Int) {
        self.gpus = gpus
        reserved = Array(repeating: 0, count: gpus.count)
        tasks = Array(repeating: 0, count: gpus.count)
        exclusive = Array(repeating: false, count: gpus.count)
        self.tasksPerGPU = max(1, tasksPerGPU)
    }

    /// Memory still promisable on GPU `i`.
    public func free(_ i: Int) -> Int64 { max(0, gpus[i].memoryTotal - gpus[i].foreignMemory - reserved[i]) }

    /// Whether one GPU's share of a task (`memory` per GPU, 0 = whole) fits on GPU `i` now.
    public func fits(memory: Int64, on i: Int) -> Bool {
        guard gpus[i].healthy, !exclusive[i] else { return false }
        if memory == 0 {
            // A whole GPU: nothing of ours on it and others use under 5 % (task-spooler's "free" rule, inverted).
            return tasks[i] == 0 && gpus[i].foreignMemory * 20 <= gpus[i].memoryTotal
        }
        return tasks[i] < tasksPerGPU && free(i) >= memory
    }

    /// How many GPUs the share fits on, leaving out the positions marked in `excluded` (when given).
    public func fitCount(memory: Int64, excluding excluded: [Bool]? = nil) -> Int {
        var count = 0
        for i in gpus.indices where fits(memory: memory, on: i) && !(excluded?[i] ?? false) { count += 1 }
        return count
    }

    /// Positions of GPUs the share fits on.
    public func candidates(memory: Int64) -> [Int] { gpus.indices.filter { fits(memory: memory, on: $0) } }

    /// Fraction of GPU `i` promised after adding `memory` (whole = all of it).
    public func packing(after memory: Int64, on i: Int) -> Double {
        let total = Double(max(gpus[i].memoryTotal, 1))
        if memory == 0 { return 1 }
        return min(1, Double(reserved[i] + gpus[i].foreignMemory + memory) / total)
    }

    public mutating func place(memory: Int64, on positions: [Int]) {
        for i in positions {
            tasks[i] += 1
            if memory == 0 {
                exclusive[i] = true
                reserved[i] += max(0, gpus[i].memoryTotal - gpus[i].foreignMemory)
            } else {
                reserved[i] += memory
            }
        }
    }

    public mutating func release(memory: Int64, on positions: [Int]) {
        for i in positions {
            tasks[i] = max(0, tasks[i] - 1)
            if memory == 0 {
                exclusive[i] = false
                reserved[i] = max(0, reserved[i] - max(0, gpus[i].memoryTotal - gpus[i].foreignMemory))
            } else {
                reserved[i] = max(0, reserved[i] - memory)
            }
        }
    }

    /// The position of the GPU with NVML index `index`.
    public func position(ofIndex index: Int) -> Int? { gpus.firstIndex { $0.index == index } }

    /// Whether the task could ever fit on an empty host: more GPUs or memory than exist, as words, or nil.
    public static func neverFits(gpus count: Int, memory: Int64, on gpus: [GPUSlot]) -> String? {
        if count > gpus.count {
            return "asks for \(count) GPU\(count == 1 ? "" : "s"); this host has \(gpus.count == 0 ? "none" : String(gpus.count))"
        }
        if count > 0 && memory > 0 {
            let big = gpus.filter { $0.memoryTotal >= memory }.count
            if big < count {
                let largest = gpus.map(\.memoryTotal).max() ?? 0
                return "asks for \(count) GPU(s) with \(formatBytes(memory)) each; this host has \(big) with that much (largest \(formatBytes(largest)))"
            }
        }
        return nil
    }
}

func formatBytes(_ bytes: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: value < 10 ? "%.1f %@" : "%.0f %@", value, units[unit])
}

/// Slurm's multifactor priority, each factor in [0,1] times its weight (`vigil queue` shows the parts).
public struct PriorityBreakdown: Codable, Sendable, Equatable {
    public var priorityClass: Double
    public var age: Double
    public var fairShare: Double
    public var size: Double
    public var total: Double

    enum CodingKeys: String, CodingKey {
        case priorityClass = "class", age, fairShare = "fair_share", size, total
    }
}

/// Per-owner GPU usage that decays with a half-life (Slurm's `PriorityDecayHalfLife`), charged in GPU-milliseconds.
public struct FairShare: Sendable, Equatable {
    public var halfLife: Int64
    public private(set) var usage: [String: Double] = [:]
    public private(set) var at: Timestamp

    public init(halfLife: Int64, at: Timestamp) {
        self.halfLife = max(halfLife, 1)
        self.at = at
    }

    public mutating func decay(to now: Timestamp) {
        guard now > at else { return }
        let factor = pow(2, -Double(now - at) / Double(halfLife))
        for key in usage.keys { usage[key]! *= factor }
        at = now
    }

    /// Adds (or, for a correction, removes) usage.
    public mutating func charge(_ owner: String, gpuMilliseconds: Double, at now: Timestamp) {
        decay(to: now)
        usage[owner] = max(0, (usage[owner] ?? 0) + gpuMilliseconds)
    }

    /// Classic fair share `2^(−U/S)`: U the owner's share of all decayed usage, S the share each of
    /// `owners` is due. 1 for an owner who used nothing, 0.5 for one who used exactly their share.
    public func factor(_ owner: String, owners: Int) -> Double {
        let total = usage.values.reduce(0, +)
        guard total > 0 else { return 1 }
        let share = 1 / Double(max(owners, 1))
        return pow(2, -((usage[owner] ?? 0) / total) / share)
    }
}

/// A start the planner decided.
public struct Placement: Sendable, Equatable {
    public var task: Int64
    /// NVML indices.
    public var gpus: [Int]
}

/// Room held for the task at the head of the queue (EASY backfill).
public struct Reservation: Codable, Sendable, Equatable {
    public var task: Int64
    public var start: Timestamp
    /// NVML indices.
    public var gpus: [Int]
}

/// One (task, GPU) pair the policy's score function is asked about.
public struct ScoreRequest: Sendable {
    public var task: PlanTask
    public var gpu: GPUSlot
    /// Ledger figures at the start of the pass.
    public var freeMemory: Int64
    public var tasksOnGPU: Int
    public var builtin: Double
}

/// Scores a batch of placements in one call (the Lua policy), or returns nil to fall back to the built-in score.
public protocol PlacementScorer {
    mutating func scores(_ requests: [ScoreRequest], policy: Policy) -> [Double]?
}

public struct PassResult: Sendable {
    public var placements: [Placement] = []
    /// Why each task of `order` waits, by position (nil: it was placed).
    public var waits: [WaitReason?] = []
    /// The same by task id (built when asked).
    public var reasons: [Int64: WaitReason] {
        var reasons: [Int64: WaitReason] = [:]
        for (id, reason) in zip(order, waits) { reasons[id] = reason }
        return reasons
    }
    public var reservation: Reservation?
    /// The waiting tasks in the order the pass considered them.
    public var order: [Int64] = []
    /// Priorities of the tasks in `order`, by position.
    public var priorities: [PriorityBreakdown] = []
    /// Pairs sent to the score function (0 when it was not called).
    public var scored = 0

    public init() {}
}

/// The placement logic, free of processes, clocks and storage: the daemon and `vigil sim` run the same code.
public struct Planner: Sendable {
    public var policy: Policy
    public var gpus: [GPUSlot]

    public init(policy: Policy, gpus: [GPUSlot]) {
        self.policy = policy
        self.gpus = gpus
    }

    /// The ledger with the active tasks placed.
    public func ledger(active: [ActiveTask]) -> Ledger {
        var ledger = Ledger(gpus: gpus, tasksPerGPU: policy.tasksPerGPU)
        for task in active {
            ledger.place(memory: task.gpuMemory, on: task.gpus.compactMap { ledger.position(ofIndex: $0) })
        }
        return ledger
    }

    /// Slurm's multifactor priority of `task`, given its owner's fair-share factor.
    public func priority(of task: PlanTask, now: Timestamp, fairShare fair: Double) -> PriorityBreakdown {
        let w = policy.priorityWeights
        let classFactor = Double(task.priority) / 100
        let age = min(1, Double(max(0, now - task.submitted)) / Double(max(policy.maxAge, 1)))
        let gpuHours = Double(max(task.gpus, 1)) * Double(task.duration) / 3_600_000
        let size = 1 / (1 + gpuHours / max(policy.sizeScale, 1e-9))
        let parts = (w.priorityClass * classFactor, w.age * age, w.fairShare * fair, w.size * size)
        return PriorityBreakdown(priorityClass: parts.0, age: parts.1, fairShare: parts.2, size: parts.3,
                                 total: parts.0 + parts.1 + parts.2 + parts.3)
    }

    /// The waiting tasks in the order the strategy considers them, with their priorities (by position in the result).
    public func order(_ waiting: [PlanTask], now: Timestamp, fairShare: FairShare?) -> ([PlanTask], [PriorityBreakdown]) {
        // Owners numbered in one hash per task; each owner's fair-share factor computed once.
        var ownerNumbers: [String: Int] = [:]
        var owners: [String] = []
        let numbers = waiting.map { task in
            if let number = ownerNumbers[task.owner] { return number }
            ownerNumbers[task.owner] = owners.count
            owners.append(task.owner)
            return owners.count - 1
        }
        let fair = owners.map { fairShare?.factor($0, owners: owners.count) ?? 1 }
        var priorities: [PriorityBreakdown] = []
        priorities.reserveCapacity(waiting.count)
        // Sort keys computed once per task; the sort moves indices, not tasks.
        var keys: [(primary: Double, submitted: Timestamp, id: Int64, index: Int)] = []
        keys.reserveCapacity(waiting.count)
        for (index, task) in waiting.enumerated() {
            let breakdown = priority(of: task, now: now, fairShare: fair[numbers[index]])
            priorities.append(breakdown)
            let primary: Double = switch policy.strategy {
            case .immediate: 0
            // First-fit decreasing inside the batch: the largest demand first packs GPUs tightest.
            case .batch: -(Double(task.gpus) * 1e6 + (task.gpuMemory == 0 ? 1e6 - 1 : Double(task.gpuMemory >> 20)))
            case .priority: -breakdown.total
            }
            keys.append((primary, task.submitted, task.id, index))
        }
        keys.sort { ($0.primary, $0.submitted, $0.id) < ($1.primary, $1.submitted, $1.id) }
        return (keys.map { waiting[$0.index] }, keys.map { priorities[$0.index] })
    }

    /// When the batch holding a task submitted at `submitted` closes.
    public func batchCloses(_ submitted: Timestamp) -> Timestamp {
        let window = max(policy.batchWindow, 1)
        return (submitted / window + 1) * window
    }

    /// One scheduling pass at `now`: which of the `ordered` waiting tasks start, on which GPUs, and why
    /// the others wait. `scorer` is called at most once, with the first `scoreWindow` tasks' candidates.
    public func pass(now: Timestamp, active: [ActiveTask], ordered: [PlanTask], drained: Bool = false,
                     scorer: inout some PlacementScorer) -> PassResult {
        var result = PassResult()
        result.order = ordered.map(\.id)
        result.waits = Array(repeating: nil, count: ordered.count)
        var ledger = ledger(active: active)
        if drained {
            for (position, task) in ordered.enumerated() { result.waits[position] = task.blocked ?? .drained }
            return result
        }
        let context = BuiltinScore.Context(gpus: gpus)

        func placeable(_ task: PlanTask) -> WaitReason? {
            if let blocked = task.blocked { return blocked }
            if let notBefore = task.notBefore, now < notBefore { return task.dependsOn.isEmpty ? .beginTime : .dependency }
            if policy.strategy == .batch && now < batchCloses(task.submitted) { return .batchWindow }
            return nil
        }

        // The score function sees the first `scoreWindow` placeable tasks' candidate GPUs, in one call.
        var luaScores: [Int64: [Int: Double]] = [:]
        var requests: [ScoreRequest] = []
        for task in ordered where task.gpus > 0 && placeable(task) == nil {
            if luaScores.count >= policy.scoreWindow { break }
            let candidates = ledger.candidates(memory: task.gpuMemory)
            guard candidates.count >= task.gpus else { continue }
            luaScores[task.id] = [:]
            for i in candidates {
                let builtin = BuiltinScore.score(gpu: gpus[i], packingAfter: ledger.packing(after: task.gpuMemory, on: i),
                                                 policy: policy, context: context)
                requests.append(ScoreRequest(task: task, gpu: gpus[i], freeMemory: ledger.free(i), tasksOnGPU: ledger.tasks[i], builtin: builtin))
            }
        }
        if !requests.isEmpty, let scores = scorer.scores(requests, policy: policy), scores.count == requests.count {
            result.scored = requests.count
            for (request, score) in zip(requests, scores) { luaScores[request.task.id]![request.gpu.index] = score }
        } else {
            luaScores = [:]
        }

        func choose(_ task: PlanTask, among positions: [Int]) -> [Int]? {
            guard positions.count >= task.gpus else { return nil }
            let scored = positions.map { i -> (Int, Double) in
                let score = luaScores[task.id]?[gpus[i].index]
                    ?? BuiltinScore.score(gpu: gpus[i], packingAfter: ledger.packing(after: task.gpuMemory, on: i),
                                          policy: policy, context: context)
                return (i, score)
            }
            return scored.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }.prefix(task.gpus).map(\.0)
        }

        var reservation: Reservation?
        var reservedPositions = [Bool](repeating: false, count: gpus.count)
        var blockedHead = false
        var running = active
        for (position, task) in ordered.enumerated() {
            if let reason = placeable(task) {
                result.waits[position] = reason
                continue
            }
            if blockedHead {
                result.waits[position] = .priority
                continue
            }
            // Backfill: a task that would still run when the head's reservation begins keeps off those GPUs.
            let avoid = reservation.map { now + task.duration > $0.start } ?? false ? reservedPositions : nil
            if task.gpus == 0 || ledger.fitCount(memory: task.gpuMemory, excluding: avoid) >= task.gpus,
               let chosen = task.gpus == 0 ? [] : choose(task, among: ledger.candidates(memory: task.gpuMemory).filter { !(avoid?[$0] ?? false) }) {
                ledger.place(memory: task.gpuMemory, on: chosen)
                let indices = chosen.map { gpus[$0].index }
                result.placements.append(Placement(task: task.id, gpus: indices))
                running.append(ActiveTask(id: task.id, gpus: indices, gpuMemory: task.gpuMemory, expectedEnd: now + task.duration))
                continue
            }
            let fitsIgnoringReservation = avoid != nil && ledger.fitCount(memory: task.gpuMemory) >= task.gpus
            if reservation == nil {
                if !policy.backfill {
                    // Strict order: nothing behind the head starts before it.
                    result.waits[position] = .resources
                    blockedHead = true
                    continue
                }
                reservation = reserve(task, ledger: ledger, running: running, now: now, context: context)
                for index in reservation?.gpus ?? [] {
                    if let position = ledger.position(ofIndex: index) { reservedPositions[position] = true }
                }
                result.reservation = reservation
                result.waits[position] = .resources
            } else {
                result.waits[position] = fitsIgnoringReservation ? .priority : .resources
            }
        }
        return result
    }

    /// The earliest time `task` fits as the running tasks end (by their expected ends), and where.
    func reserve(_ task: PlanTask, ledger start: Ledger, running: [ActiveTask], now: Timestamp,
                 context: BuiltinScore.Context) -> Reservation? {
        var ledger = start
        for ending in running.sorted(by: { $0.expectedEnd < $1.expectedEnd }) {
            ledger.release(memory: ending.gpuMemory, on: ending.gpus.compactMap { ledger.position(ofIndex: $0) })
            let candidates = ledger.candidates(memory: task.gpuMemory)
            if candidates.count >= task.gpus {
                let chosen = candidates.map { i in
                    (i, BuiltinScore.score(gpu: gpus[i], packingAfter: ledger.packing(after: task.gpuMemory, on: i),
                                           policy: policy, context: context))
                }.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }.prefix(task.gpus).map { gpus[$0.0].index }
                return Reservation(task: task.id, start: max(now, ending.expectedEnd), gpus: chosen)
            }
        }
        return nil
    }

    /// Predicted start and end of each waiting task: the queue simulated forward with the same pass
    /// (built-in score), running tasks ending at their expected ends. Only the first `depth` tasks in
    /// order are simulated (Slurm's bf_max_job_test); tasks that never start within `horizon` are left out.
    public func forecast(now: Timestamp, active: [ActiveTask], waiting: [PlanTask], fairShare: FairShare?,
                         depth: Int = 500, horizon: Int64 = 30 * 86_400_000) -> [Int64: (start: Timestamp, end: Timestamp)] {
        var (pending, _) = order(waiting, now: now, fairShare: fairShare)
        // Tasks held for reasons time does not cure stay out of the forecast.
        pending.removeAll { $0.blocked != nil && $0.blocked != .dependency }
        pending = Array(pending.prefix(depth))
        var running = active
        var time = now
        var planned: [Int64: (start: Timestamp, end: Timestamp)] = [:]
        var scorer = NoScorer()
        var iterations = 0
        while !pending.isEmpty && time <= now + horizon && iterations < 100_000 {
            iterations += 1
            // Dependencies: free once every task it waits for has a planned (or actual) end.
            for i in pending.indices where !pending[i].dependsOn.isEmpty {
                let ends = pending[i].dependsOn.map { id in planned[id]?.end ?? running.first { $0.id == id }?.expectedEnd }
                if ends.allSatisfy({ $0 != nil }) {
                    pending[i].notBefore = max(pending[i].notBefore ?? 0, ends.map { $0! }.max() ?? 0)
                    pending[i].blocked = nil
                }
            }
            running.removeAll { $0.expectedEnd <= time }
            let result = pass(now: time, active: running, ordered: pending, scorer: &scorer)
            for placement in result.placements {
                guard let task = pending.first(where: { $0.id == placement.task }) else { continue }
                planned[task.id] = (time, time + task.duration)
                running.append(ActiveTask(id: task.id, gpus: placement.gpus, gpuMemory: task.gpuMemory, expectedEnd: time + task.duration))
            }
            let started = Set(result.placements.map(\.task))
            pending.removeAll { started.contains($0.id) }
            // The next moment anything can change: a task ends, a hold lifts, a batch closes.
            var next = running.map(\.expectedEnd).filter { $0 > time }.min()
            for task in pending {
                if let notBefore = task.notBefore, notBefore > time { next = min(next ?? notBefore, notBefore) }
                if policy.strategy == .batch { let close = batchCloses(task.submitted); if close > time { next = min(next ?? close, close) } }
            }
            guard let next else { break }
            time = next
        }
        return planned
    }
}

/// A scorer that never answers: the built-in score decides.
public struct NoScorer: PlacementScorer {
    public init() {}
    public mutating func scores(_ requests: [ScoreRequest], policy: Policy) -> [Double]? { nil }
}
