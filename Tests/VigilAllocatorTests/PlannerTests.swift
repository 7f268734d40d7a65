import Foundation
import Logging
import VigilStore
import Testing
import VigilCore
@testable import VigilAllocator

private let GiB: Int64 = 1 << 30

private func slots(_ count: Int, memory: Int64 = 80 * GiB) -> [GPUSlot] {
    (0..<count).map { index in
        var slot = GPUSlot(index: index, uuid: "GPU-\(index)", model: "NVIDIA H100 80GB HBM3", memoryTotal: memory)
        slot.clockSMMax = 1980
        slot.pricePerHour = 2
        return slot
    }
}

private func task(_ id: Int64, gpus: Int, memory: Int64 = 0, minutes: Int64 = 10, owner: String = "ana",
                  priority: TaskPriority = .normal, submitted: Timestamp = 0) -> PlanTask {
    PlanTask(id: id, owner: owner, submitted: submitted, gpus: gpus, gpuMemory: memory, priority: priority.value,
             duration: minutes * 60_000)
}

private func pass(_ planner: Planner, now: Timestamp = 1_000, active: [ActiveTask] = [], _ waiting: [PlanTask],
                  fairShare: FairShare? = nil) -> PassResult {
    var scorer = NoScorer()
    let (ordered, _) = planner.order(waiting, now: now, fairShare: fairShare)
    return planner.pass(now: now, active: active, ordered: ordered, scorer: &scorer)
}

@Suite("the planner: ledger, strategies, backfill, fair share, forecast")
struct PlannerTests {
    @Test("declared memory is reserved per GPU: tasks share a GPU while their declarations fit, up to tasks_per_gpu")
    func sharing() {
        var policy = Policy()
        policy.tasksPerGPU = 2
        var gpus = slots(1)
        gpus[0].foreignMemory = 20 * GiB   // someone else's process, seen through NVML
        let planner = Planner(policy: policy, gpus: gpus)
        // 60 GiB left: 30 + 30 fit; a third would exceed both the memory and the two-per-GPU limit.
        let result = pass(planner, [task(1, gpus: 1, memory: 30 * GiB), task(2, gpus: 1, memory: 30 * GiB, submitted: 1),
                                    task(3, gpus: 1, memory: 1 * GiB, submitted: 2)])
        #expect(result.placements.map(\.task) == [1, 2])
        #expect(result.reasons[3] == .resources)
        // A whole-GPU task never goes where others hold memory.
        let whole = pass(planner, [task(4, gpus: 1)])
        #expect(whole.placements.isEmpty)
        #expect(Ledger.neverFits(gpus: 9, memory: 0, on: slots(8)) == "asks for 9 GPUs; this host has 8")
        #expect(Ledger.neverFits(gpus: 1, memory: 100 * GiB, on: slots(8))?.contains("largest 80 GiB") == true)
    }

    @Test("backfill: a later task starts only if it ends before the head's reservation or keeps off its GPUs")
    func backfill() throws {
        let planner = Planner(policy: Policy(), gpus: slots(8))
        let now: Timestamp = 1_000
        // Four GPUs busy for an hour. The head needs all eight: it is reserved at the hour.
        let running = [ActiveTask(id: 100, gpus: [0, 1, 2, 3], gpuMemory: 0, expectedEnd: now + 3_600_000)]
        let head = task(1, gpus: 8, minutes: 10, priority: .urgent)
        let short = task(2, gpus: 2, minutes: 30)
        let long = task(3, gpus: 2, minutes: 120)
        let result = pass(planner, now: now, active: running, [head, short, long])
        let reservation = try #require(result.reservation)
        #expect(reservation.task == 1 && reservation.start == now + 3_600_000)
        #expect(result.placements.map(\.task) == [2], "the short task ends before the reservation: it backfills")
        #expect(result.reasons[3] == .priority, "the long task would delay the head")
        // The head's start is the same with the backfilled task running.
        let after = pass(planner, now: now, active: running + [ActiveTask(id: 2, gpus: result.placements[0].gpus, gpuMemory: 0,
                                                                          expectedEnd: now + 30 * 60_000)], [head, long])
        #expect(after.reservation?.start == reservation.start)
        #expect(after.placements.isEmpty)
        // Strict FIFO: nothing behind the blocked head starts at all.
        let fifo = pass(Planner(policy: .fifo, gpus: slots(8)), now: now, active: running, [head, short, long])
        #expect(fifo.placements.isEmpty && fifo.reasons[2] == .priority)
    }

    @Test("priority: class first; at equal class the owner with less recent GPU use goes first")
    func priorityAndFairShare() {
        let planner = Planner(policy: Policy(), gpus: slots(1))
        var fairShare = FairShare(halfLife: 7 * 86_400_000, at: 0)
        fairShare.charge("ana", gpuMilliseconds: 10 * 3_600_000, at: 0)
        let (ordered, priorities) = planner.order([task(1, gpus: 1, owner: "ana", submitted: 0),
                                                   task(2, gpus: 1, owner: "ben", submitted: 5),
                                                   task(3, gpus: 1, owner: "ana", priority: .high, submitted: 9)],
                                                  now: 1_000, fairShare: fairShare)
        #expect(ordered.map(\.id) == [3, 2, 1])
        #expect(priorities[1].fairShare > priorities[2].fairShare, "ben (no usage) has the higher fair-share factor")
        // 2^(−U/S): ana has all the usage of two owners (S = 1/2): 2^−2 = 0.25; ben 2^0 = 1.
        #expect(abs(fairShare.factor("ana", owners: 2) - 0.25) < 1e-12)
        #expect(fairShare.factor("ben", owners: 2) == 1)
        // Usage halves every half-life.
        var decayed = fairShare
        decayed.decay(to: 7 * 86_400_000)
        #expect(abs(decayed.usage["ana"]! - 5 * 3_600_000) < 1e-6)
    }

    @Test("batch: submissions wait for their window, then the largest is placed first")
    func batch() {
        var policy = Policy()
        policy.strategy = .batch
        policy.batchWindow = 5_000
        let planner = Planner(policy: policy, gpus: slots(2))
        let small = task(1, gpus: 1, submitted: 10_100)
        let large = task(2, gpus: 2, submitted: 10_200)
        let held = pass(planner, now: 12_000, [small, large])
        #expect(held.placements.isEmpty && held.reasons[1] == .batchWindow)
        let closed = pass(planner, now: 15_000, [small, large])
        #expect(closed.placements.map(\.task) == [2], "two GPUs for the larger task, none left for the smaller")
    }

    @Test("the forecast simulates the queue: starts follow the running tasks' ends")
    func forecast() throws {
        var policy = Policy()
        policy.strategy = .immediate
        let planner = Planner(policy: policy, gpus: slots(2))
        let running = [ActiveTask(id: 100, gpus: [0, 1], gpuMemory: 0, expectedEnd: 60_000)]
        var dependent = task(3, gpus: 1, minutes: 1, submitted: 2)
        dependent.blocked = .dependency
        dependent.dependsOn = [1]
        let plan = planner.forecast(now: 0, active: running, waiting: [task(1, gpus: 2, minutes: 10), task(2, gpus: 1, minutes: 5, submitted: 1), dependent],
                                    fairShare: nil)
        #expect(plan[1]?.start == 60_000 && plan[1]?.end == 660_000)
        #expect(plan[2]?.start == 660_000)
        #expect(plan[3]?.start == 660_000, "the dependent task starts when task 1 is predicted to end")
    }

    @Test("a task past its prediction is expected to run as long again")
    func overrun() {
        #expect(ActiveTask.expectedEnd(started: 0, planned: 600_000, now: 100_000) == 600_000)
        #expect(ActiveTask.expectedEnd(started: 0, planned: 600_000, now: 900_000) == 1_800_000)
        #expect(ActiveTask.expectedEnd(started: 0, planned: 600_000, now: 900_000, paused: 500_000) == 1_100_000)
    }

    @Test("durations: history of the kind, then the declaration, the limit, the host's median, the default")
    func prediction() {
        var history = DurationHistory()
        var spec = TaskSpec(command: ["/usr/bin/python3", "train.py"], directory: "/", owner: "ana")
        #expect(history.predict(spec, defaultDuration: 3_600_000) == (3_600_000, .default))
        spec.timeLimit = 7_200_000
        #expect(history.predict(spec, defaultDuration: 1) == (7_200_000, .limit))
        spec.expectedDuration = 600_000
        #expect(history.predict(spec, defaultDuration: 1) == (600_000, .declared))
        for minutes: Int64 in [10, 30, 20] { history.record("other", minutes * 60_000) }
        spec.expectedDuration = nil
        spec.timeLimit = nil
        #expect(history.predict(spec, defaultDuration: 1) == (20 * 60_000, .host))
        for minutes: Int64 in [5, 7, 100, 6] { history.record("python3", minutes * 60_000) }
        #expect(history.predict(spec, defaultDuration: 1) == (390_000, .history), "median of 5, 6, 7, 100 minutes")
        spec.timeLimit = 60_000
        #expect(history.predict(spec, defaultDuration: 1) == (60_000, .history), "capped by the time limit")
    }

    @Test("costs: rates by model, energy at the kWh price, off-peak windows")
    func costs() throws {
        var configuration = CostsConfiguration()
        configuration.gpuHour = ["H100": 4, "A100": 2.5]
        configuration.defaultGPUHour = 1
        configuration.kwh = 0.2
        configuration.offPeak = [try #require(OffPeakWindow(parsing: "22:00-06:00"))]
        configuration.offPeakFactor = 0.5
        let model = CostModel(configuration)
        #expect(model.gpuHourRate(model: "NVIDIA H100 80GB HBM3") == 4)
        #expect(model.gpuHourRate(model: "NVIDIA A100-SXM4-40GB") == 2.5)
        #expect(model.gpuHourRate(model: "NVIDIA L40S") == 1)
        #expect(OffPeakWindow(parsing: "25:00-01:00") == nil)
        #expect(configuration.offPeak[0].contains(minuteOfDay: 23 * 60) && configuration.offPeak[0].contains(minuteOfDay: 5 * 60))
        #expect(!configuration.offPeak[0].contains(minuteOfDay: 12 * 60))
        // Half an H100 drawing 500 W: 4 × 0.5 + 0.5 × 0.5 kW × 0.2 = 2.05 per hour, halved off-peak.
        let noon = Self.localTime(hour: 12), night = Self.localTime(hour: 23)
        #expect(abs(model.ratePerHour(shares: [("NVIDIA H100 80GB HBM3", 0.5, 500)], at: noon) - 2.05) < 1e-9)
        #expect(abs(model.ratePerHour(shares: [("NVIDIA H100 80GB HBM3", 0.5, 500)], at: night) - 1.025) < 1e-9)
        #expect(model.nextOffPeak(after: night) == night)
        #expect(CostModel.minuteOfDay(try #require(model.nextOffPeak(after: noon))) == 22 * 60)
    }

    static func localTime(hour: Int) -> Timestamp {
        var parts = tm()
        parts.tm_year = 2026 - 1900
        parts.tm_mon = 10
        parts.tm_mday = 27
        parts.tm_hour = Int32(hour)
        parts.tm_isdst = -1
        return Timestamp(mktime(&parts)) * 1000
    }

    @Test("vigil sim on the Tiresias trace: the default policy's mean JCT is ≤ 0.6 × FIFO at equal or better utilisation")
    func simulation() throws {
        // The trace ../shared/data/traces/tiresias-60.csv, kept in the repository so a clean clone has it.
        let trace = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/traces/tiresias-60.csv").path
        let text = try String(contentsOfFile: trace, encoding: .utf8)
        let jobs = try TraceJob.parseCSV(text, file: trace)
        #expect(jobs.count == 60)
        let simulator = Simulator(gpuCount: 8, costs: CostModel(CostsConfiguration()))
        var none = NoScorer()
        let fifo = simulator.run(jobs, policy: .fifo, name: "fifo", scorer: &none)
        let policy = simulator.run(jobs, policy: Policy(), name: "default", scorer: &none)
        #expect(fifo.jobs == 60 && policy.jobs == 60)
        #expect(policy.averageJCT <= 0.6 * fifo.averageJCT, "\(policy.averageJCT) vs FIFO \(fifo.averageJCT)")
        #expect(policy.utilization >= fifo.utilization)
        // Every job ran exactly its duration: the GPU-seconds and the cost do not depend on the order.
        #expect(abs(policy.cost - fifo.cost) < 1e-9)
    }

    @Test("trace lines with bad fields are refused with the line")
    func badTrace() {
        #expect(throws: PolicyError.self) { try TraceJob.parseCSV("job_id,num_gpu\n1,2\n", file: "t.csv") }
        #expect { try TraceJob.parseCSV("job_id,num_gpu,submit_time,duration\n1,x,0,5\n", file: "t.csv") } throws: {
            "\($0)" == "t.csv:2: num_gpu must be a number ≥ 0"
        }
    }
}

@Suite("policy scripts")
struct PolicyScriptTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func load(_ text: String) throws -> PolicyScript {
        let path = NSTemporaryDirectory() + "vigil-policy-\(UUID().uuidString).lua"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var logger = Logger(label: "test.policy")
        logger.logLevel = .critical
        let script = PolicyScript(path: path, store: MetricStore(), clock: ManualWallClock(), logger: logger)
        script.reloadIfChanged()
        return script
    }

    @Test("the default rules/policy.lua and every vigil.policy example in rules/README.md load")
    func documented() throws {
        let shipped = try Self.load(try String(contentsOf: Self.root.appendingPathComponent("rules/policy.lua"), encoding: .utf8))
        #expect(shipped.lastError == nil && shipped.hasScore)
        #expect(shipped.policy.strategy == .priority && shipped.policy.target == .balanced)
        let readme = try String(contentsOf: Self.root.appendingPathComponent("rules/README.md"), encoding: .utf8)
        let blocks = readme.components(separatedBy: "```lua\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
            .filter { $0.contains("vigil.policy") }
        #expect(!blocks.isEmpty)
        for block in blocks {
            let script = try Self.load(block)
            #expect(script.lastError == nil, "\(script.lastError ?? "")\n\(block)")
        }
    }

    @Test("mistakes name the field")
    func mistakes() throws {
        let cases = [
            ("vigil.policy { strategy = \"fastest\" }", "strategy must be immediate, batch or priority"),
            ("vigil.policy { weights = { sped = 1 } }", "unknown weight sped"),
            ("vigil.policy { tasks_per_gpu = 0 }", "tasks_per_gpu must be a number from 1 to 1,024, got 0"),
            ("vigil.policy { batch_window = \"soon\" }", "batch_window must be a duration"),
            ("vigil.policy { colour = 1 }", "unknown field colour"),
            ("local x = 1", "the file must call vigil.policy"),
        ]
        for (body, message) in cases {
            let script = try Self.load("local vigil = require 'vigil'\n" + body)
            #expect(script.lastError?.contains(message) == true, "\(script.lastError ?? "no error") for \(body)")
        }
    }
}
