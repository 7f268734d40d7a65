import Foundation
import Logging
import Testing
import VigilCollectors
import VigilCore
import VigilLua
import VigilState
import VigilStore
import VigilTesting
@testable import VigilAllocator
#if canImport(Glibc)
import Glibc
#endif

private let GiB: Int64 = 1 << 30

/// An allocator on a temporary folder, its GPUs read from the fake NVML library (8 GPUs) through the real
/// collector, its clock moved by the test; tasks are real processes.
final class AllocatorHarness {
    let root: URL
    let nvml: FakeNVML
    let store = MetricStore()
    let clock = ManualWallClock(SystemWallClock().now())
    let collector: NVMLCollector
    let database: StateDatabase
    let allocator: Allocator
    var policyPath: String { root.appendingPathComponent("policy.lua").path }

    /// The repository's eight-GPU scenario with no processes and idle GPUs.
    static func eightGPUs(_ adjust: (Int, inout [String: Any]) -> Void = { _, _ in }) throws -> [String: Any] {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/VigilFakeNVML/eight-gpus.json")
        var scenario = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as! [String: Any]
        var gpus = scenario["gpus"] as! [[String: Any]]
        for index in gpus.indices {
            gpus[index]["processes"] = []
            gpus[index]["utilization"] = ["gpu": 0, "memory": 0]
            var memory = gpus[index]["memory"] as! [String: Any]
            memory["used"] = 0
            gpus[index]["memory"] = memory
            gpus[index]["temperature"] = 40
            adjust(index, &gpus[index])
        }
        scenario["gpus"] = gpus
        return scenario
    }

    init(scenario: [String: Any]? = nil, policy: String? = nil, costs: CostsConfiguration = CostsConfiguration(), grace: Int64 = 2_000) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-allocator-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        nvml = try FakeNVML(try scenario ?? Self.eightGPUs())
        collector = try nvml.collector(clock: clock)
        database = try StateDatabase(dataDirectory: root.appendingPathComponent("data").path)
        var logger = Logger(label: "test.allocator")
        logger.logLevel = .critical
        if let policy { try policy.write(toFile: root.appendingPathComponent("policy.lua").path, atomically: true, encoding: .utf8) }
        let script = PolicyScript(path: root.appendingPathComponent("policy.lua").path, store: store, clock: clock, logger: logger)
        var options = Allocator.Options(logs: root.appendingPathComponent("data/tasks").path, costs: CostModel(costs))
        options.grace = grace
        for entry in try collector.collect().entries { _ = store.append(entry.labels, clock.now(), entry.value) }
        allocator = try Allocator(database: database, store: store, clock: clock, policy: script, options: options, logger: logger)
        allocator.tick()  // as the daemon does after the collectors' first round
    }

    deinit {
        for view in allocator.list() where view.record.state.isActive {
            if let pid = view.record.pid { kill(-pid, SIGKILL) }
        }
        try? FileManager.default.removeItem(at: root)
    }

    /// One NVML reading into the store, stamped now.
    func collect() throws {
        for entry in try collector.collect().entries { _ = store.append(entry.labels, clock.now(), entry.value) }
    }

    func tick() throws {
        try collect()
        allocator.tick()
    }

    /// A command that runs until `release(name)`.
    func blocker(_ name: String) -> [String] {
        ["sh", "-c", "while [ ! -e '\(root.path)/release-\(name)' ]; do sleep 0.02; done"]
    }

    func release(_ name: String) {
        FileManager.default.createFile(atPath: root.appendingPathComponent("release-\(name)").path, contents: Data())
    }

    func spec(_ command: [String], gpus: Int = 0, memory: Int64 = 0, owner: String = "ana", _ adjust: (inout TaskSpec) -> Void = { _ in }) -> TaskSpec {
        var spec = TaskSpec(command: command, directory: root.path, owner: owner)
        spec.gpus = gpus
        spec.gpuMemory = memory
        spec.expectedDuration = 600_000
        adjust(&spec)
        return spec
    }

    func submit(_ command: [String], gpus: Int = 0, memory: Int64 = 0, owner: String = "ana",
                _ adjust: (inout TaskSpec) -> Void = { _ in }) async throws -> Int64 {
        try await allocator.submit(spec(command, gpus: gpus, memory: memory, owner: owner, adjust)).id
    }

    func view(_ id: Int64) throws -> TaskView { try allocator.task(id) }

    /// Ticks (without moving the clock) until `condition` holds on the task, or 15 s pass.
    @discardableResult
    func wait(_ id: Int64, _ what: String = "", until condition: (TaskView) -> Bool) async throws -> TaskView {
        let deadline = ContinuousClock.now + .seconds(15)
        var last = try view(id)
        while ContinuousClock.now < deadline {
            try tick()
            last = try view(id)
            if condition(last) { return last }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("task \(id) never reached \(what): \(last.record.state) \(last.record.reason ?? "")")
        return last
    }

    func log(_ id: Int64) throws -> String { try allocator.log(id, stream: "stdout") }
}

/// The state letter of a process (R, S, T…) from /proc, nil once it is gone (or a zombie).
private func processState(_ pid: Int32) -> Character? {
    let letter = TaskProcess.stateLetter(pid)
    return letter == "Z" ? nil : letter
}

/// The pid of the command under the task's shell wrapper (the child of the wrapper).
private func child(of pid: Int32) -> Int32? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8) else { return nil }
    return text.split(separator: " ").first.flatMap { Int32($0) }
}

@Suite("the allocator with real processes on the fake library's 8 GPUs", .serialized)
struct AllocatorTests {
    @Test("placement and the queue: a task that does not fit waits, and starts when the task holding its GPUs ends")
    func waitList() async throws {
        let h = try AllocatorHarness()
        let all = try await h.submit(h.blocker("all"), gpus: 8)
        try h.tick()
        #expect(try h.view(all).record.state == .running)
        #expect(try h.view(all).record.gpuIndices.sorted() == Array(0..<8))
        let next = try await h.submit(["true"], gpus: 1, memory: 4 * GiB)
        try h.tick()
        let waiting = try h.view(next)
        #expect(waiting.record.state == .queued && waiting.reason == .resources)
        #expect(waiting.estimatedStart != nil, "the queue forecast gives it a start")
        h.release("all")
        let done = try await h.wait(next, "succeeded") { $0.record.state == .succeeded }
        #expect(done.record.exitCode == 0)
        #expect(try h.view(all).record.state == .succeeded)
        // Refused at submit, with the reason.
        await #expect { try await h.allocator.submit(h.spec(["true"], gpus: 9)) } throws: {
            "\($0)" == "this task can never run here: it asks for 9 GPUs; this host has 8"
        }
    }

    @Test("the child sees CUDA_VISIBLE_DEVICES as its GPUs' UUIDs and CUDA_DEVICE_ORDER=PCI_BUS_ID")
    func binding() async throws {
        let h = try AllocatorHarness()
        let id = try await h.submit(["sh", "-c", "echo \"$CUDA_VISIBLE_DEVICES|$CUDA_DEVICE_ORDER|$VIGIL_TASK_ID\""], gpus: 2)
        let done = try await h.wait(id, "succeeded") { $0.record.state == .succeeded }
        #expect(done.record.gpuUUIDs.count == 2 && done.record.gpuUUIDs.allSatisfy { $0.hasPrefix("GPU-") })
        #expect(try h.log(id) == "\(done.record.gpuUUIDs.joined(separator: ","))|PCI_BUS_ID|\(id)\n")
        let none = try await h.submit(["sh", "-c", "echo \"[${CUDA_VISIBLE_DEVICES-unset}]\""])
        try await h.wait(none, "succeeded") { $0.record.state == .succeeded }
        #expect(try h.log(none) == "[]\n", "a task with no GPU sees none (empty, not unset)")
    }

    @Test("pause, resume and cancel are seen in the real process state; a paused task keeps its GPU memory")
    func control() async throws {
        let h = try AllocatorHarness()
        let id = try await h.submit(["sleep", "60"], gpus: 1, memory: 10 * GiB)
        let running = try await h.wait(id, "running") { $0.record.state == .running }
        let shell = try #require(running.record.pid)
        var sleeper: Int32?
        for _ in 0..<500 where sleeper == nil { sleeper = child(of: shell); try await Task.sleep(for: .milliseconds(10)) }
        let pid = try #require(sleeper)
        _ = try h.allocator.pause(id)
        var state = processState(pid)
        for _ in 0..<500 where state != "T" { try await Task.sleep(for: .milliseconds(10)); state = processState(pid) }
        #expect(state == "T", "SIGSTOP reached the command")
        let paused = try h.view(id)
        #expect(paused.record.state == .paused && paused.note?.contains("GPU memory stays reserved") == true)
        #expect(h.allocator.queue().gpus.first { $0.tasks.contains(id) }?.reserved == 10 * GiB)
        _ = try h.allocator.resume(id)
        state = processState(pid)
        for _ in 0..<500 where state == "T" { try await Task.sleep(for: .milliseconds(10)); state = processState(pid) }
        #expect(state == "S" || state == "R")
        _ = try h.allocator.cancel(id)
        let cancelled = try await h.wait(id, "cancelled") { $0.record.state == .cancelled }
        #expect(cancelled.record.signal == SIGTERM && cancelled.record.reason == "cancelled")
        #expect(processState(pid) == nil)
        #expect(throws: AllocatorError.self) { try h.allocator.pause(id) }
    }

    @Test("a task past its time limit is stopped (SIGTERM, then SIGKILL after the grace period) with the reason")
    func timeLimit() async throws {
        let h = try AllocatorHarness(grace: 500)
        // Ignores SIGTERM, so only SIGKILL after the grace period ends it.
        let id = try await h.submit(["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"], gpus: 1) { $0.timeLimit = 60_000 }
        try await h.wait(id, "running") { $0.record.state == .running }
        h.clock.advance(by: 61_000)
        try h.tick()
        #expect(try h.view(id).note == "stopping: time limit 1m reached")
        h.clock.advance(by: 1_000)
        let stopped = try await h.wait(id, "stopped") { $0.record.state == .stopped }
        #expect(stopped.record.reason == "time limit 1m reached")
        #expect(stopped.record.runTime(at: h.clock.now()) >= 60_000)
    }

    @Test("cost limit: not started when the prediction exceeds it; stopped when the actual cost reaches it")
    func costLimit() async throws {
        var costs = CostsConfiguration()
        costs.gpuHour = ["H100": 6]
        costs.defaultGPUHour = 6
        costs.kwh = 0
        let h = try AllocatorHarness(costs: costs)
        // Two hours on a GPU at 6 an hour is 12, over a limit of 5.
        let expensive = try await h.submit(["true"], gpus: 1) { $0.expectedDuration = 7_200_000; $0.costLimit = 5 }
        try h.tick()
        #expect(try h.view(expensive).reason == .costLimit)
        // Ten minutes predicted (1.0) under a limit of 1.5; after 20 minutes it has cost 2.0 and is stopped.
        let running = try await h.submit(h.blocker("cost"), gpus: 1) { $0.expectedDuration = 600_000; $0.costLimit = 1.5 }
        try await h.wait(running, "running") { $0.record.state == .running }
        for _ in 0..<20 { h.clock.advance(by: 60_000); try h.tick() }
        let stopped = try await h.wait(running, "stopped") { $0.record.state == .stopped }
        #expect(stopped.record.reason == "cost limit 1.50 USD reached")
        #expect(stopped.record.cost >= 1.5 && stopped.record.cost < 1.7)
        // The same cost is in the totals per day and owner, with its GPU-hours.
        let days = try h.allocator.costs(since: h.clock.now() - 86_400_000)
        #expect(abs(days.reduce(0) { $0 + $1.cost } - stopped.record.cost) < 1e-9)
        #expect(days.allSatisfy { $0.owner == "ana" })
        #expect(abs(days.reduce(0) { $0 + $1.gpuSeconds } / 3600 - stopped.record.cost / 6) < 1e-6, "one whole GPU at 6 an hour")
        #expect(h.allocator.queue().costToday > 0 || days.count > 1, "today's total (unless the run crossed midnight)")
    }

    @Test("off-peak tasks wait for a window (BeginTime) and start inside one")
    func offPeak() async throws {
        var parts = tm()
        var seconds = time_t(SystemWallClock().now() / 1000)
        localtime_r(&seconds, &parts)
        let hour = Int(parts.tm_hour)
        func window(_ from: Int) -> OffPeakWindow {
            OffPeakWindow(parsing: String(format: "%02d:00-%02d:00", from % 24, (from + 1) % 24))!
        }
        var later = CostsConfiguration()
        later.offPeak = [window(hour + 2)]
        let waiting = try AllocatorHarness(costs: later)
        let held = try await waiting.submit(["true"], gpus: 1) { $0.offPeak = true }
        try waiting.tick()
        let view = try waiting.view(held)
        #expect(view.reason == .beginTime)
        #expect(try #require(view.estimatedStart) > waiting.clock.now() + 3_600_000, "the forecast starts it in the window")
        let normal = try await waiting.submit(["true"], gpus: 1)
        try await waiting.wait(normal, "succeeded") { $0.record.state == .succeeded }
        var now = CostsConfiguration()
        now.offPeak = [window(hour)]
        let open = try AllocatorHarness(costs: now)
        let runs = try await open.submit(["true"], gpus: 1) { $0.offPeak = true }
        try await open.wait(runs, "succeeded") { $0.record.state == .succeeded }
    }

    @Test("dependencies: after ok waits for success and is dropped on failure; after any runs either way")
    func dependencies() async throws {
        let h = try AllocatorHarness()
        let first = try await h.submit(["sh", "-c", "while [ ! -e '\(h.root.path)/release-first' ]; do sleep 0.02; done; exit 3"])
        let afterOK = try await h.submit(["true"]) { $0.after = [Dependency(task: first, condition: .ok)] }
        let afterAny = try await h.submit(["true"]) { $0.after = [Dependency(task: first, condition: .any)] }
        try h.tick()
        #expect(try h.view(afterOK).reason == .dependency)
        #expect(try h.view(afterAny).reason == .dependency)
        h.release("first")
        try await h.wait(afterAny, "succeeded") { $0.record.state == .succeeded }
        let dropped = try await h.wait(afterOK, "stopped") { $0.record.state == .stopped }
        #expect(dropped.record.reason == "dependency afterok:\(first) can never be satisfied: task \(first) failed")
        #expect(try h.view(first).record.exitCode == 3)
        await #expect(throws: AllocatorError.self) { try await h.allocator.submit(h.spec(["true"]) { $0.after = [Dependency(task: 999, condition: .ok)] }) }
    }

    @Test("priorities: when one GPU frees, the urgent task gets it before the earlier low one")
    func priorities() async throws {
        let h = try AllocatorHarness()
        var blockers: [Int64] = []
        for index in 0..<8 { blockers.append(try await h.submit(h.blocker("b\(index)"), gpus: 1, owner: "carl")) }
        try h.tick()
        let low = try await h.submit(["true"], gpus: 1) { $0.priority = .low }
        let urgent = try await h.submit(["true"], gpus: 1) { $0.priority = .urgent }
        try h.tick()
        #expect(try h.view(low).record.state == .queued && h.view(urgent).record.state == .queued)
        h.release("b0")
        try await h.wait(urgent, "started") { $0.record.started != nil }
        #expect(try h.view(low).record.state == .queued, "the low task still waits for a GPU")
        for index in 1..<8 { h.release("b\(index)") }
        try await h.wait(low, "succeeded") { $0.record.state == .succeeded }
    }

    @Test("fair share: at equal priority, the owner who used less goes first")
    func fairShare() async throws {
        let h = try AllocatorHarness()
        // ana ran on a GPU for ten hours.
        let history = try await h.submit(h.blocker("history"), gpus: 1)
        try await h.wait(history, "running") { $0.record.state == .running }
        h.clock.advance(by: 10 * 3_600_000)
        h.release("history")
        try await h.wait(history, "succeeded") { $0.record.state == .succeeded }
        var blockers: [Int64] = []
        for index in 0..<8 { blockers.append(try await h.submit(h.blocker("b\(index)"), gpus: 1, owner: "carl")) }
        try h.tick()
        let ana = try await h.submit(["true"], gpus: 1, owner: "ana")
        h.clock.advance(by: 1_000)
        let ben = try await h.submit(["true"], gpus: 1, owner: "ben")
        try h.tick()
        let (anaView, benView) = (try h.view(ana), try h.view(ben))
        #expect(try #require(benView.priorityBreakdown).fairShare > (try #require(anaView.priorityBreakdown)).fairShare)
        h.release("b0")
        try await h.wait(ben, "started") { $0.record.started != nil }
        #expect(try h.view(ana).record.state == .queued, "ana submitted first but used more")
        for index in 1..<8 { h.release("b\(index)") }
        try await h.wait(ana, "succeeded") { $0.record.state == .succeeded }
    }

    @Test("backfill with real tasks: a short task fills idle GPUs; a long one waits so the head's start does not move")
    func backfill() async throws {
        let h = try AllocatorHarness()
        let half = try await h.submit(h.blocker("half"), gpus: 4) { $0.expectedDuration = 3_600_000 }
        try await h.wait(half, "running") { $0.record.state == .running }
        let head = try await h.submit(["true"], gpus: 8) { $0.priority = .urgent; $0.expectedDuration = 600_000 }
        try h.tick()
        let reserved = try #require(try h.view(head).estimatedStart)
        let short = try await h.submit(h.blocker("short"), gpus: 2) { $0.expectedDuration = 1_800_000 }
        let long = try await h.submit(h.blocker("long"), gpus: 2) { $0.expectedDuration = 3 * 3_600_000 }
        try await h.wait(short, "running") { $0.record.state == .running }
        try h.tick()
        #expect(try h.view(long).reason == .priority)
        #expect(try h.view(head).estimatedStart == reserved, "the backfilled task ends before the head's reserved start")
        for name in ["half", "short", "long"] { h.release(name) }
        try await h.wait(head, "succeeded") { $0.record.state == .succeeded }
        try await h.wait(long, "succeeded") { $0.record.state == .succeeded }
    }

    @Test("GPU memory of processes Vigil did not start counts as used")
    func foreignMemory() async throws {
        // GPU 4 (40 GiB) has 30 GiB taken by a process that is not a task (this test process, as NVML shows it).
        let scenario = try AllocatorHarness.eightGPUs { index, gpu in
            if index == 4 { gpu["processes"] = [["pid": "self", "used_memory": 30 * GiB, "type": "compute"]] }
        }
        let h = try AllocatorHarness(scenario: scenario)
        try h.tick()
        #expect(h.allocator.queue().gpus.first { $0.index == 4 }?.foreign == 30 * GiB)
        var ids: [Int64] = []
        for _ in 0..<8 { ids.append(try await h.submit(h.blocker("x"), gpus: 1, memory: 20 * GiB)) }
        try h.tick()
        let placed = try ids.map { try h.view($0).record.gpuIndices }.flatMap { $0 }
        #expect(!placed.contains(4), "20 GiB does not fit in the 10 GiB others left on GPU 4")
        h.release("x")
    }

    @Test("a task's own processes using more than it declared hold that much in the ledger")
    func observedMemory() async throws {
        let h = try AllocatorHarness()
        let id = try await h.submit(["sleep", "60"], gpus: 1, memory: 10 * GiB)
        let running = try await h.wait(id, "running") { $0.record.state == .running }
        let gpu = running.record.gpuIndices[0]
        var sleeper: Int32?
        for _ in 0..<500 where sleeper == nil { sleeper = child(of: try #require(running.record.pid)); try await Task.sleep(for: .milliseconds(10)) }
        let pid = try #require(sleeper)
        // NVML now shows the task's command using 30 GiB on its GPU.
        try h.nvml.write(try AllocatorHarness.eightGPUs { index, entry in
            if index == gpu { entry["processes"] = [["pid": Int(pid), "used_memory": 30 * GiB, "type": "compute"]] }
        })
        try h.tick()
        let slot = try #require(h.allocator.queue().gpus.first { $0.index == gpu })
        #expect(slot.reserved == 30 * GiB, "max(declared 10 GiB, observed 30 GiB)")
        #expect(slot.foreign == 0, "the task's own process is not someone else's")
        _ = try h.allocator.cancel(id)
        try await h.wait(id, "cancelled") { $0.record.state == .cancelled }
    }

    @Test("a task's mean GPU utilisation, peak memory and cost per GPU are kept, and its facts add up to hand-computed figures")
    func usageAndCostShares() async throws {
        var costs = CostsConfiguration()
        costs.gpuHour = [:]
        costs.defaultGPUHour = 4
        costs.kwh = 0
        let h = try AllocatorHarness(costs: costs)
        let id = try await h.submit(h.blocker("usage"), gpus: 2, owner: "ben")
        let running = try await h.wait(id, "running") { $0.record.state == .running }
        let (a, b) = (running.record.gpuIndices[0], running.record.gpuIndices[1])
        var sleeper: Int32?
        for _ in 0..<500 where sleeper == nil { sleeper = child(of: try #require(running.record.pid)); try await Task.sleep(for: .milliseconds(10)) }
        let pid = try #require(sleeper)
        // Its GPUs at 60 % and 20 %; its command holds 12 GiB on the first, then 5 GiB.
        func usage(_ memory: Int64) throws {
            try h.nvml.write(try AllocatorHarness.eightGPUs { index, entry in
                if index == a { entry["utilization"] = ["gpu": 60, "memory": 10]; entry["processes"] = [["pid": Int(pid), "used_memory": memory, "type": "compute"]] }
                if index == b { entry["utilization"] = ["gpu": 20, "memory": 10] }
            })
        }
        try usage(12 * GiB)
        for _ in 0..<5 { h.clock.advance(by: 60_000); try h.tick() }
        try usage(5 * GiB)
        for _ in 0..<5 { h.clock.advance(by: 60_000); try h.tick() }
        h.release("usage")
        try await h.wait(id, "succeeded") { $0.record.state == .succeeded }

        // Ten minutes on two whole GPUs at 4 an hour: 1.3333, half of it on each GPU.
        let facts = try #require(h.allocator.facts(since: 0).first { $0.id == id })
        #expect(abs(facts.cost - 2 * 4 * 10.0 / 60) < 1e-9)
        #expect(abs(facts.gpuHours - 2 * 10.0 / 60) < 1e-9 && facts.runSeconds == 600)
        #expect(facts.meanUtilization.map { abs($0 - 0.4) < 1e-9 } == true, "(60 % + 20 %) / 2 for the whole run")
        #expect(facts.gpuMemoryPeak == 12 * GiB)
        #expect(facts.owner == "ben" && facts.state == "succeeded" && facts.kind == "sh")
        let shares = try h.allocator.costShares(since: h.clock.now() - 86_400_000).filter { $0.task == id }
        #expect(Set(shares.map(\.gpu)) == [String(a), String(b)])
        for share in shares {
            #expect(abs(share.cost - 4 * 10.0 / 60) < 1e-9 && abs(share.gpuSeconds - 600) < 1e-9 && share.owner == "ben")
        }
        // The per-owner totals are the same rows added up.
        let days = try h.allocator.costs(since: h.clock.now() - 86_400_000)
        #expect(abs(days.filter { $0.owner == "ben" }.reduce(0) { $0 + $1.cost } - facts.cost) < 1e-9)
        // Replayed through the simulator: one 2-GPU job of 600 s on an idle host waits for nothing.
        let replay = h.allocator.replay(since: 0, strategy: .immediate, backfill: false)
        #expect(replay.jobs == 1 && replay.strategy == "immediate" && !replay.backfill && replay.meanWaitSeconds == 0)
        #expect(replay.meanJCTSeconds == 600 && replay.makespanSeconds == 600)
        #expect(abs(replay.utilization - 2.0 / 8) < 1e-9, "2 of the 8 GPUs busy for the whole makespan")
    }

    @Test("a weight changed in the policy file changes the next placement, without a restart; a broken edit keeps the last good policy")
    func policyReload() async throws {
        // GPU 3 is the fastest; GPU 7 (a GeForce) the cheapest.
        let scenario = try AllocatorHarness.eightGPUs { index, gpu in
            gpu["max_clocks"] = ["sm": index == 3 ? 2500 : 1500, "memory": 2619, "graphics": 1500]
        }
        var costs = CostsConfiguration()
        costs.gpuHour = ["H100": 4, "A100": 3, "L40S": 2, "GeForce": 0.5]
        func policy(speed: Double, efficiency: Double) -> String {
            """
            local vigil = require "vigil"
            vigil.policy { target = "cost", weights = { speed = \(speed), efficiency = \(efficiency), reliability = 0 } }
            """
        }
        let h = try AllocatorHarness(scenario: scenario, policy: policy(speed: 1, efficiency: 0), costs: costs)
        let fast = try await h.submit(["true"], gpus: 1)
        #expect(try await h.wait(fast, "placed") { $0.record.started != nil }.record.gpuIndices == [3])
        try policy(speed: 0, efficiency: 1).write(toFile: h.policyPath, atomically: true, encoding: .utf8)
        let cheap = try await h.submit(["true"], gpus: 1)
        #expect(try await h.wait(cheap, "placed") { $0.record.started != nil }.record.gpuIndices == [7])
        try "vigil.policy { strategy = \"fastest\" }".write(toFile: h.policyPath, atomically: true, encoding: .utf8)
        try h.tick()
        let queue = h.allocator.queue()
        #expect(queue.policy.error?.contains("attempt to index a nil value (global 'vigil')") == true, "\(queue.policy.error ?? "")")
        #expect(queue.policy.target == "cost" && queue.policy.efficiency == 1, "the last good policy stays")
        let again = try await h.submit(["true"], gpus: 1)
        #expect(try await h.wait(again, "placed") { $0.record.started != nil }.record.gpuIndices == [7])
    }

    @Test("the score function is called once per pass with every candidate; when it fails the built-in score decides")
    func luaScore() async throws {
        let h = try AllocatorHarness(policy: """
            local vigil = require "vigil"
            vigil.policy {
              score = function(task, gpu, w)
                if task.owner == "boom" then error("no score for " .. task.owner) end
                return gpu.index == 5 and 100 or gpu.builtin
              end,
            }
            """)
        let id = try await h.submit(["true"], gpus: 1)
        #expect(try await h.wait(id, "placed") { $0.record.started != nil }.record.gpuIndices == [5])
        #expect(h.allocator.policyScript.scoreCalls == 1)
        let failing = try await h.submit(["true"], gpus: 1, owner: "boom")
        let placed = try await h.wait(failing, "placed") { $0.record.started != nil }
        #expect(placed.record.gpuIndices.count == 1)
        #expect(h.allocator.queue().policy.error?.contains("no score for boom") == true)
    }

    @Test("drain: nothing new starts until undrain, and the reason says so")
    func drain() async throws {
        let h = try AllocatorHarness()
        try h.allocator.setDrained(true)
        let id = try await h.submit(["true"], gpus: 1)
        try h.tick()
        #expect(try h.view(id).reason == .drained)
        try h.allocator.setDrained(false)
        try await h.wait(id, "succeeded") { $0.record.state == .succeeded }
    }

    @Test("the allocator's state is published as metrics")
    func metrics() async throws {
        let h = try AllocatorHarness()
        let id = try await h.submit(h.blocker("m"), gpus: 1, memory: 8 * GiB)
        h.clock.advance(by: 1_000)  // a new sample time: the store keeps one sample per series per instant
        try await h.wait(id, "running") { $0.record.state == .running }
        try h.tick()
        let now = h.clock.now()
        func value(_ selector: String) throws -> Double? {
            h.store.instant(try SeriesSelector(parsing: selector), at: now).first?.value
        }
        #expect(try value(#"vigil_allocator_tasks{state="running"}"#) == 1)
        #expect(try value(#"vigil_allocator_reserved_gpu_memory_bytes{gpu="\#(try h.view(id).record.gpuIndices[0])"}"#) == Double(8 * GiB))
        #expect(try value("vigil_allocator_cost_per_hour") ?? 0 > 0)
        h.release("m")
    }
}
