import Foundation
import Logging
import Testing
import VigilCore
import VigilLua
import VigilState
import VigilStore
@testable import VigilRules

private let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
private let GiB: Int64 = 1 << 30

/// Facts recorded for a test: what the allocator and the benchmark history would say.
struct RecordedHistory: HistorySource {
    var taskList: [TaskFacts] = []
    var gpuList: [GPUFacts] = []
    var prices = PricingFacts(currency: "EUR", defaultGPUHour: 2, kwh: 0.3, offPeakFactor: 0.5, hasOffPeak: true)
    var results: [BenchFacts] = []
    /// Mean wait by strategy ("" is the live policy's, which is priority).
    var waits: [String: Double] = [:]

    func tasks(since: Timestamp) -> [TaskFacts] { taskList.filter { !$0.isFinished || ($0.ended ?? 0) >= since } }
    func gpus() -> [GPUFacts] { gpuList }
    func pricing() -> PricingFacts { prices }
    func benchmarks(since: Timestamp) -> [BenchFacts] { results.filter { $0.time >= since } }
    func replay(since: Timestamp, strategy: String?, backfill: Bool?) throws -> ReplayFacts {
        let name = strategy ?? "priority"
        guard let wait = waits[strategy ?? ""] ?? waits[name] else { throw RuleLoadError(description: "no replay for \(name)") }
        return ReplayFacts(strategy: name, backfill: backfill ?? true, jobs: 20, meanJCTSeconds: wait + 1000, meanWaitSeconds: wait,
                           p95WaitSeconds: wait * 2, utilization: 0.7, makespanSeconds: 40_000)
    }
}

/// A rules folder holding the shipped recommendation and indicator scripts, an engine over a store of
/// recorded metrics, and the recorded facts.
final class RecommendationHarness {
    let directory: String
    let store = MetricStore()
    let database: StateDatabase
    var engine: RuleEngine!

    init(history: RecordedHistory, shipped: [String] = ["recommendations.lua", "indicators.lua"], files: [String: String] = [:]) throws {
        let directory = NSTemporaryDirectory() + "vigil-recommend-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for name in shipped {
            try FileManager.default.copyItem(atPath: root.appendingPathComponent("rules/\(name)").path, toPath: directory + "/" + name)
        }
        self.directory = directory
        database = try StateDatabase(dataDirectory: directory + "/data")
        for (name, text) in files { try write(name, text) }
        engine = makeEngine(history)
    }

    func makeEngine(_ history: RecordedHistory) -> RuleEngine {
        RuleEngine(store: store, options: RuleEngineOptions(rulesDirectory: directory), database: database, history: history,
                   logger: Logger(label: "test"))
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
    }

    /// `value(t)` for every 15 s from two hours before `end` to `end` (seconds).
    func record(_ name: String, _ labels: [String: String], until end: Int64, _ value: (Int64) -> Double) {
        let ref = store.series(Labels(name: name, labels))
        for t in stride(from: end - 7200, through: end, by: 15) { store.append(ref, t * 1000, value(t)) }
    }

    func tick(_ seconds: Int64) {
        engine.reload(at: seconds * 1000)
        engine.tick(at: seconds * 1000)
    }

    func by(_ rule: String) -> [Recommendation] { engine.recommendations.filter { $0.rule == rule } }
}

/// Three GPUs: 0 idle, 1 busy but held down by heat, 2 busy with XID errors; tasks from ana (over-declared
/// memory, peak-time work), ben (peak-time work) and carl (high priority); benchmark runs with a regression.
private func recorded(now: Int64) -> RecordedHistory {
    let ms = now * 1000
    func task(_ id: Int64, owner: String, kind: String, state: String = "succeeded", priority: Int = 50, declared: Int64 = 0,
              peak: Int64? = nil, util: Double? = 0.8, run: Double = 3600, cost: Double, offPeakCost: Double = 0, gpus: Int = 1) -> TaskFacts {
        TaskFacts(id: id, name: "\(kind)-\(id)", owner: owner, kind: kind, state: state, priority: priority, offPeak: false, gpus: gpus,
                  gpuIndices: [2], gpuModel: "NVIDIA H100", gpuMemoryDeclared: declared, gpuMemoryPeak: peak, meanUtilization: util,
                  submitted: ms - 86_400_000, started: ms - 86_000_000, ended: state == "running" ? nil : ms - 80_000_000 + id * 1000,
                  runSeconds: run, waitSeconds: 400, gpuHours: Double(gpus) * run / 3600, cost: cost, offPeakCost: offPeakCost,
                  timeLimitSeconds: nil)
    }
    var history = RecordedHistory()
    history.taskList = (1...4).map { task($0, owner: "ana", kind: "train", declared: 40 * GiB, peak: 6 * GiB, run: 7200, cost: 10) }
        + [task(5, owner: "ben", kind: "etl", cost: 12, offPeakCost: 2), task(6, owner: "ben", kind: "etl", cost: 12, offPeakCost: 2),
           task(7, owner: "carl", kind: "urgent", priority: 75, cost: 50),
           task(8, owner: "dora", kind: "notebook", priority: 75, util: 0.1, run: 7200, cost: 8)]
    history.gpuList = [
        GPUFacts(gpu: "0", uuid: "GPU-0", model: "NVIDIA L40S", pricePerHour: 2.5, memoryTotal: 48 * GiB, tasks: 0, lastTaskEnded: nil),
        GPUFacts(gpu: "1", uuid: "GPU-1", model: "NVIDIA H100", pricePerHour: 3, memoryTotal: 80 * GiB, tasks: 1, lastTaskEnded: nil),
        GPUFacts(gpu: "2", uuid: "GPU-2", model: "NVIDIA H100", pricePerHour: 3, memoryTotal: 80 * GiB, tasks: 1, lastTaskEnded: ms - 600_000),
    ]
    history.waits = ["": 600, "immediate": 300, "batch": 900]
    let day: Int64 = 86_400_000
    for (index, value) in [10, 10.2, 9.8, 10, 8].enumerated() {
        history.results.append(BenchFacts(run: "r\(index)", time: ms - Int64(5 - index) * day, host: "vm", quick: true, name: "memory.copy",
                                          suite: "memory", value: value, unit: "GB/s", higherIsBetter: true, score: value * 10))
    }
    for (index, value) in [1.0, 1.0, 1.05].enumerated() {
        history.results.append(BenchFacts(run: "d\(index)", time: ms - Int64(3 - index) * day, host: "vm", quick: true, name: "disk.latency",
                                          suite: "disk", value: value, unit: "ms", higherIsBetter: false, score: 50))
    }
    return history
}

private func recordMetrics(_ h: RecommendationHarness, now: Int64) {
    let models = ["0": "NVIDIA L40S", "1": "NVIDIA H100", "2": "NVIDIA H100"]
    let utilization = ["0": 0.02, "1": 0.9, "2": 0.5]
    let clocks = ["0": 2000e6, "1": 1500e6, "2": 1950e6]
    for gpu in ["0", "1", "2"] {
        let labels = ["gpu": gpu, "model": models[gpu]!]
        h.record("gpu_utilization_ratio", labels, until: now) { _ in utilization[gpu]! }
        h.record("gpu_clock_hertz", labels.merging(["clock": "sm"]) { a, _ in a }, until: now) { _ in clocks[gpu]! }
        h.record("gpu_clock_max_hertz", labels.merging(["clock": "sm"]) { a, _ in a }, until: now) { _ in 2000e6 }
        h.record("gpu_clocks_event_active", labels.merging(["reason": "sw_thermal_slowdown"]) { a, _ in a }, until: now) { _ in gpu == "1" ? 1 : 0 }
        h.record("gpu_xid_errors_total", labels, until: now) { t in gpu == "2" && t > now - 3600 ? 3 : 0 }
    }
}

@Suite("recommendations and indicators")
struct RecommendationTests {
    let now: Int64 = 1_800_000_000

    @Test("the shipped pack turns recorded metrics and task histories into the expected recommendations and savings")
    func shippedPack() throws {
        let h = try RecommendationHarness(history: recorded(now: now))
        recordMetrics(h, now: now)
        h.tick(now)
        let all = h.engine.recommendations
        #expect(h.engine.rules.filter { $0.kind == "recommend" }.allSatisfy { $0.health == .ok },
                "\(h.engine.rules.compactMap(\.lastError))")
        let weeksPerMonth = 730.0 / 168

        let idle = try #require(h.by("IdleGpu").first)
        #expect(h.by("IdleGpu").count == 1 && idle.subject == "gpu" && idle.subjectID == "0")
        #expect(idle.savingPerMonth == 2.5 * 730 && idle.gpuHoursPerMonth == 730 && idle.currency == "EUR")
        #expect(idle.title == "GPU 0 (NVIDIA L40S) idle for the last hour")
        #expect(idle.advice.contains("utilisation stayed at or under 2.0%") && idle.advice.contains("costs 1825 a month"), "\(idle.advice)")

        let throttled = try #require(h.by("GpuThrottled").first)
        #expect(h.by("GpuThrottled").map(\.subjectID) == ["1"])
        #expect(abs(throttled.value - 0.25) < 1e-9 && abs(throttled.savingPerMonth! - 0.25 * 3 * 730) < 1e-6)
        #expect(abs(throttled.gpuHoursPerMonth! - 182.5) < 1e-6)
        #expect(throttled.title == "GPU 1 (NVIDIA H100) throttled: clocks 25.0% below their maximum")

        // 40 GiB declared, 6 GiB peak: suggest ceil(7.5) = 8 GiB, so 80 % of the declared share is freed.
        let oversized = try #require(h.by("OversizedMemoryRequest").first)
        #expect(h.by("OversizedMemoryRequest").count == 1 && oversized.subject == "owner" && oversized.subjectID == "ana")
        #expect(abs(oversized.savingPerMonth! - 40 * 0.8 * weeksPerMonth) < 1e-6)
        #expect(abs(oversized.gpuHoursPerMonth! - 8 * 0.8 * weeksPerMonth) < 1e-6)
        #expect(oversized.title == "ana's train tasks declare 40 GiB of GPU memory but peak at 6 GiB")
        #expect(oversized.advice.hasPrefix("Submit them with --gpu-mem 8 GiB"))

        // Peak-rate cost × (1 − 0.5) a week, scaled to a month; carl's high-priority task is left alone.
        let offPeak = Dictionary(uniqueKeysWithValues: h.by("RunOffPeak").map { ($0.subjectID, $0) })
        #expect(Set(offPeak.keys) == ["ana", "ben"])
        #expect(abs(offPeak["ana"]!.savingPerMonth! - 40 * 0.5 * weeksPerMonth) < 1e-6)
        #expect(abs(offPeak["ben"]!.savingPerMonth! - 20 * 0.5 * weeksPerMonth) < 1e-6)
        #expect(offPeak["ben"]!.advice.hasPrefix("2 normal- or low-priority tasks cost 20.00 at peak rates"))

        // dora's notebook kept its GPU 10 % busy for 2 hours: 90 % of its cost (8) a week was for idle time.
        let underused = try #require(h.by("UnderusedGpus").first)
        #expect(h.by("UnderusedGpus").map(\.subjectID) == ["dora"], "ana's and ben's tasks are 80 % busy")
        #expect(abs(underused.savingPerMonth! - 0.9 * 8 * weeksPerMonth) < 1e-6 && abs(underused.gpuHoursPerMonth! - 0.9 * 2 * weeksPerMonth) < 1e-6)
        #expect(underused.title == "dora's notebook tasks keep their GPUs only 10.0% busy")

        let strategy = try #require(h.by("QueueStrategy").first)
        #expect(strategy.labels == ["strategy": "immediate"] && strategy.value == 0.5 && strategy.subject == "host")
        #expect(strategy.title == #"strategy = "immediate" would have cut the mean queue wait from 10m to 5m"#)

        let faulty = try #require(h.by("AvoidFaultyGpu").first)
        #expect(h.by("AvoidFaultyGpu").map(\.subjectID) == ["2"] && abs(faulty.value - 3) < 0.01 && faulty.severity == "warning")

        let regression = try #require(h.by("BenchmarkRegression").first)
        #expect(h.by("BenchmarkRegression").map(\.subjectID) == ["memory.copy"])
        #expect(abs(regression.value - 0.2) < 1e-9)
        #expect(regression.title == "benchmark memory.copy regressed 20.0%: 8.000 GB/s against a median of 10.000")

        // Most valuable first: money, then GPU-hours, then severity.
        #expect(all.map(\.rule) == ["IdleGpu", "GpuThrottled", "OversizedMemoryRequest", "RunOffPeak", "RunOffPeak", "UnderusedGpus",
                                    "AvoidFaultyGpu", "BenchmarkRegression", "QueueStrategy"])
    }

    @Test("a recommendation is kept once while it holds, expires when it stops, and is kept in SQLite across a restart")
    func lifecycle() throws {
        let h = try RecommendationHarness(history: recorded(now: now))
        recordMetrics(h, now: now)
        h.tick(now)
        let first = try #require(h.by("IdleGpu").first)
        // Evaluated again later: the same one, first seen when it first held.
        h.record("gpu_utilization_ratio", ["gpu": "0", "model": "NVIDIA L40S"], until: now + 600) { _ in 0.02 }
        h.tick(now + 600)
        #expect(h.by("IdleGpu").count == 1 && h.by("IdleGpu").first?.firstSeen == first.firstSeen
                && h.by("IdleGpu").first?.lastSeen == (now + 600) * 1000)
        h.engine.flush()
        let count = h.engine.recommendations.count

        // A restart: the saved ones are back before any evaluation.
        let restarted = h.makeEngine(recorded(now: now))
        restarted.reload(at: (now + 610) * 1000)
        #expect(restarted.recommendations.count == count && restarted.recommendations.contains { $0.rule == "IdleGpu" && $0.firstSeen == first.firstSeen })
        h.engine = restarted

        // GPU 0 gets work: the recommendation expires, and the database says when.
        h.store.append(Labels(name: "gpu_utilization_ratio", ["gpu": "0", "model": "NVIDIA L40S"]), (now + 900) * 1000, 0.7)
        h.tick(now + 900)
        #expect(h.by("IdleGpu").isEmpty)
        h.engine.flush()
        let rows = try h.database.recommendations(expiredSince: 0).filter { $0.rule == "IdleGpu" }
        #expect(rows.count == 1 && rows[0].expiredAt == (now + 900) * 1000)
        #expect(try h.database.recommendations().filter { $0.rule == "IdleGpu" }.isEmpty, "no longer active")
    }

    @Test("a recommendation script edited on disk changes the output at the next evaluation, without a restart")
    func editedOnDisk() throws {
        func script(_ threshold: String) -> String {
            """
            local vigil = require "vigil"
            vigil.recommend "BusyGpu" {
              every = "1m", about = "gpu",
              query = "gpu_utilization_ratio",
              when = function(s) return s.value > \(threshold) end,
              title = "GPU {{gpu}} is {{value | percent}} busy",
            }
            """
        }
        let h = try RecommendationHarness(history: recorded(now: now), shipped: [], files: ["mine.lua": script("0.8")])
        recordMetrics(h, now: now)
        h.tick(now)
        #expect(h.by("BusyGpu").map(\.title) == ["GPU 1 is 90.0% busy"])
        try h.write("mine.lua", script("0.4"))
        h.tick(now + 60)
        #expect(Set(h.by("BusyGpu").map(\.subjectID)) == ["1", "2"])
        // A broken edit: the last good version keeps running, and the file says why.
        try h.write("mine.lua", script("0.4 +"))
        h.tick(now + 120)
        #expect(Set(h.by("BusyGpu").map(\.subjectID)) == ["1", "2"])
        #expect(h.engine.fileStatuses.first?.error?.contains("mine.lua") == true)
        // The file removed: its recommendations expire.
        try FileManager.default.removeItem(atPath: h.directory + "/mine.lua")
        h.tick(now + 180)
        #expect(h.engine.recommendations.isEmpty)
    }

    @Test("the shipped indicators give the guide's levels for tasks and the host from hand-computed figures")
    func indicators() throws {
        let h = try RecommendationHarness(history: recorded(now: now), shipped: ["indicators.lua"])
        recordMetrics(h, now: now)
        h.tick(now)
        let ms = now * 1000
        var done = TaskFacts(id: 1, name: "a", owner: "ana", kind: "train", state: "succeeded", priority: 50, offPeak: false, gpus: 1,
                             gpuIndices: [0], gpuModel: nil, gpuMemoryDeclared: 8 * GiB, gpuMemoryPeak: 6 * GiB, meanUtilization: 0.8,
                             submitted: ms - 1000_000, started: ms - 900_000, ended: ms - 820_000, runSeconds: 80, waitSeconds: 100,
                             gpuHours: 80.0 / 3600, cost: 1, offPeakCost: 0, timeLimitSeconds: nil)
        done.similarMedianSeconds = 100
        done.similarCount = 5
        var running = done
        running.id = 2
        running.state = "running"
        running.ended = nil
        running.meanUtilization = 0.3
        running.gpuMemoryDeclared = 0
        running.similarMedianSeconds = nil
        var queued = running
        queued.id = 3
        queued.state = "queued"
        queued.meanUtilization = nil
        let report = h.engine.indicators(tasks: [done, running, queued], gpus: recorded(now: now).gpuList, at: ms)
        #expect(report.errors.isEmpty, "\(report.errors)")
        func levels(_ readings: [IndicatorReading]?) -> [String: String] {
            Dictionary(uniqueKeysWithValues: (readings ?? []).map { ($0.name, $0.level) })
        }
        // 100 s median / 80 s = 1.25 → High; 0.8 × 6/8 = 0.6 → Good.
        #expect(levels(report.tasks[1]) == ["speed": "High", "efficiency": "Good", "status": "Complete"])
        #expect(report.tasks[1]?.first { $0.name == "speed" }?.value == 1.25)
        // No history: 0.5 + 0.75 × 0.3 = 0.725 → Low; 0.3 → Poor.
        #expect(levels(report.tasks[2]) == ["speed": "Low", "efficiency": "Poor", "status": "Active"])
        #expect(levels(report.tasks[3]) == ["status": "Queued"])
        // The host: GPUs (0.02 + 0.9 + 0.5) / 3 busy → speed 0.855 Medium, efficiency 0.473 Good; a task runs → Active.
        #expect(levels(report.host) == ["speed": "Medium", "efficiency": "Good", "status": "Active"])
        let speed = try #require(report.host.first { $0.name == "speed" }?.value)
        #expect(abs(speed - (0.5 + 0.75 * (0.02 + 0.9 + 0.5) / 3)) < 1e-9)
    }

    @Test("vigil.history filters tasks and benchmarks, keeps the newest `limit`, and says what a wrong option is")
    func historyFunctions() throws {
        let lua = try LuaState(name: "h.lua", logger: Logger(label: "test"))
        VigilLuaModule.install(in: lua, store: MetricStore(), clock: ManualWallClock(now * 1000), history: recorded(now: now))
        func run(_ source: String) throws -> [LuaValue] { try lua.run("local vigil = require 'vigil'\n" + source, chunkName: "h.lua") }
        let ids = try run("""
            local out = {}
            for _, t in ipairs(vigil.history.tasks { state = "succeeded", owner = "ana", limit = 2 }) do out[#out + 1] = t.id end
            return table.concat(out, ",")
            """)
        #expect(ids == [.string("3,4")])
        #expect(try run("return #vigil.history.tasks { since = '1h' }") == [.integer(0)], "they all ended about a day ago")
        #expect(try run("return #vigil.history.tasks { state = 'finished', kind = 'etl' }") == [.integer(2)])
        #expect(try run("return #vigil.history.benchmarks { name = 'disk.latency' }") == [.integer(3)])
        #expect(try run("return vigil.history.replay { strategy = 'batch' }.mean_wait_seconds") == [.integer(900)])
        #expect(try run("return vigil.history.pricing().off_peak_factor") == [.number(0.5)])
        #expect(try run("return vigil.history.gpus()[2].price_per_hour") == [.integer(3)])
        #expect(throws: LuaError.self) { try run("return vigil.history.tasks { sinse = '1d' }") }
        do {
            _ = try run("return vigil.history.tasks { limit = 0 }")
            Issue.record("limit 0 accepted")
        } catch let error as LuaError {
            #expect(error.description.contains("limit must be a whole number from 1 to 1000000"), "\(error)")
        }
        // Without an allocator (vigil eval, alert rule tests): empty lists, no prices, no replays.
        let bare = try LuaState(name: "b.lua", logger: Logger(label: "test"))
        VigilLuaModule.install(in: bare, store: MetricStore(), clock: ManualWallClock(0))
        #expect(try bare.run("local vigil = require 'vigil' return #vigil.history.tasks(), vigil.history.pricing(), vigil.history.replay()",
                             chunkName: "b.lua") == [.integer(0), .nil, .nil])
    }

    @Test("mistakes in recommendation and indicator scripts are reported with the file, and the rest keeps working")
    func mistakes() throws {
        let h = try RecommendationHarness(history: recorded(now: now), shipped: [], files: [
            "typo.lua": """
                local vigil = require "vigil"
                vigil.recommend "X" { query = "up", titel = "oops" }
                """,
            "level.lua": """
                local vigil = require "vigil"
                vigil.indicator "mood" { levels = { "Sad", "Happy" }, thresholds = { 0.5 }, task = function(t) return "Grumpy" end }
                vigil.indicator "bad" { levels = { "A", "B", "C" }, thresholds = { 1 }, host = function(h) return 1 end }
                """,
            "fails.lua": """
                local vigil = require "vigil"
                vigil.recommend "Fails" { query = function(q) error("no luck") end, title = "never" }
                """,
        ])
        h.tick(now)
        let errors = Dictionary(uniqueKeysWithValues: h.engine.fileStatuses.map { (($0.path as NSString).lastPathComponent, $0.error ?? "") })
        #expect(errors["typo.lua"]?.contains("vigil.recommend \"X\": unknown field 'titel'") == true, "\(errors)")
        #expect(errors["level.lua"]?.contains("3 levels need 2 thresholds") == true, "\(errors)")
        let failing = try #require(h.engine.rules.first { $0.name == "Fails" })
        #expect(failing.kind == "recommend" && failing.health == .error && failing.lastError?.contains("no luck") == true)

        try h.write("level.lua", """
            local vigil = require "vigil"
            vigil.indicator "mood" { levels = { "Sad", "Happy" }, thresholds = { 0.5 }, task = function(t) return "Grumpy" end }
            """)
        h.tick(now + 1)
        let task = recorded(now: now).taskList[0]
        let report = h.engine.indicators(tasks: [task], gpus: [], at: now * 1000)
        #expect(report.errors == [#"indicator mood: vigil.indicator "mood" returned "Grumpy", which is not one of its levels (Sad, Happy)"#])
    }
}
