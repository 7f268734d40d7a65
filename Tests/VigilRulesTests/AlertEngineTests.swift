import Foundation
import Logging
import Testing
import VigilCore
import VigilLua
import VigilState
import VigilStore
@testable import VigilRules

/// A rules folder in a temporary directory, a store, and an engine on virtual time.
final class RuleHarness {
    let directory: String
    let store = MetricStore()
    var engine: RuleEngine!
    var database: StateDatabase?
    var sent: [String: [Alert]] = [:]

    init(_ files: [String: String], database: Bool = false, options: (inout RuleEngineOptions) -> Void = { _ in }) throws {
        directory = NSTemporaryDirectory() + "vigil-rules-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (name, text) in files { try write(name, text) }
        if database { self.database = try StateDatabase(dataDirectory: directory + "/data") }
        engine = makeEngine(options)
    }

    func makeEngine(_ configure: (inout RuleEngineOptions) -> Void = { _ in }) -> RuleEngine {
        var options = RuleEngineOptions(rulesDirectory: directory)
        options.defaultInterval = 1000
        configure(&options)
        let engine = RuleEngine(store: store, options: options, database: database, logger: Logger(label: "test"))
        engine.onAlerts = { [unowned self] rule, alerts in sent[rule] = alerts }
        return engine
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
    }

    func set(_ name: String, _ labels: [String: String] = [:], _ value: Double, at seconds: Int64) {
        store.append(Labels(name: name, labels), seconds * 1000, value)
    }

    /// Reloads and evaluates at `seconds`.
    func tick(_ seconds: Int64) {
        engine.reload(at: seconds * 1000)
        engine.tick(at: seconds * 1000)
    }

    func states(_ rule: String) -> [String] {
        engine.alerts.filter { $0.rule == rule }.map { "\($0.state.rawValue)" + ($0.labels["severity"].map { ":\($0)" } ?? "") }
    }

    func firing(_ rule: String) -> [AlertView] { engine.alerts.filter { $0.rule == rule && $0.state == .firing } }
}

@Suite("alert rule semantics")
struct AlertEngineTests {
    @Test("pending: fires only after the condition held for `pending`; a gap resets the timer")
    func pending() throws {
        let h = try RuleHarness(["gpu.lua": """
            local vigil = require "vigil"
            vigil.alert "GpuTooHot" {
              every = "1s", query = "gpu_temperature_celsius", pending = "3s",
              fire = function(s) return s.value > 85 end,
              summary = "GPU {{gpu}} at {{value}} °C",
            }
            """])
        let values: [Double] = [90, 90, 90, 80, 90, 90, 90, 90]
        var seen: [String] = []
        for (second, value) in values.enumerated() {
            h.set("gpu_temperature_celsius", ["gpu": "0"], value, at: Int64(second))
            h.tick(Int64(second))
            seen.append(h.engine.alerts.first?.state.rawValue ?? "none")
        }
        #expect(seen == ["pending", "pending", "pending", "none", "pending", "pending", "pending", "firing"])
        let alert = try #require(h.sent["GpuTooHot"]?.first)
        #expect(alert.labels == ["alertname": "GpuTooHot", "gpu": "0", "severity": "warning"])
        #expect(alert.annotations["summary"] == "GPU 0 at 90 °C")
        #expect(alert.startsAt == 7000)
    }

    @Test("keep: a firing alert stays firing for `keep` after its condition stops, then resolves")
    func keep() throws {
        let h = try RuleHarness(["r.lua": """
            local vigil = require "vigil"
            vigil.alert "Busy" { query = "load", keep = "2s", fire = function(s) return s.value > 1 end }
            """])
        var seen: [String] = []
        for (second, value) in [2.0, 0, 0, 0, 2, 0, 2].enumerated() {
            h.set("load", [:], value, at: Int64(second))
            h.tick(Int64(second))
            seen.append(h.engine.alerts.first.map { $0.state.rawValue } ?? "none")
        }
        // 0: fires (pending 0). 1, 2: kept. 3: keep (2 s since 1) expired → resolved (inactive, retained).
        #expect(seen == ["firing", "firing", "firing", "inactive", "firing", "firing", "firing"])
        #expect(h.engine.alerts.first?.activeAt == 4000, "the series returning after resolution is a new instance")
    }

    @Test("hysteresis: Kapacitor's documented level sequence 61 73 64 85 62 56 47")
    func hysteresis() throws {
        let h = try RuleHarness(["r.lua": """
            local vigil = require "vigil"
            vigil.alert "Levels" {
              query = "x",
              fire  = { info = function(s) return s.value > 60 end, warning = function(s) return s.value > 70 end,
                        critical = function(s) return s.value > 80 end },
              clear = { info = function(s) return s.value < 50 end, warning = function(s) return s.value < 60 end,
                        critical = function(s) return s.value < 70 end },
            }
            """])
        var seen: [String] = []
        for (second, value) in [61.0, 73, 64, 85, 62, 56, 47].enumerated() {
            h.set("x", [:], value, at: Int64(second))
            h.tick(Int64(second))
            let alert = h.firing("Levels").first
            seen.append(alert?.labels["severity"] ?? "ok")
        }
        #expect(seen == ["info", "warning", "warning", "critical", "info", "info", "ok"])
    }

    @Test("clear: a single-level rule stays firing until clear holds")
    func clearCondition() throws {
        let h = try RuleHarness(["r.lua": """
            local vigil = require "vigil"
            vigil.alert "Hot" { query = "t", fire = function(s) return s.value > 85 end, clear = function(s) return s.value < 80 end }
            """])
        var seen: [Bool] = []
        for (second, value) in [90.0, 84, 82, 79, 84].enumerated() {
            h.set("t", [:], value, at: Int64(second))
            h.tick(Int64(second))
            seen.append(!h.firing("Hot").isEmpty)
        }
        #expect(seen == [true, true, true, false, false])
    }

    @Test("flapping: alternating states mark the instance flapping and hold its notifications; stable again later")
    func flapping() throws {
        let h = try RuleHarness(["r.lua": """
            local vigil = require "vigil"
            vigil.alert "Flappy" { query = "x", fire = function(s) return s.value > 0 end,
                                   flapping = { low = 0.25, high = 0.5, history = 6 } }
            """])
        var flappingAt: Int64?
        for second in Int64(0)..<8 {
            h.set("x", [:], second % 2 == 0 ? 1 : 0, at: second)
            h.tick(second)
            if flappingAt == nil, h.engine.alerts.first?.flapping == true { flappingAt = second }
        }
        #expect(flappingAt != nil)
        // Firing while flapping: nothing goes to receivers.
        h.set("x", [:], 1, at: 8)
        h.tick(8)
        #expect(h.engine.alerts.first?.state == .firing)
        #expect(h.sent["Flappy"]?.contains { $0.status == .firing } == false)
        #expect(h.store.instant(try SeriesSelector(parsing: "vigil_alert_flapping"), at: 8000).first?.value == 1)
        // Steady firing: the change ratio falls below `low` and the alert is sent again.
        for second in Int64(9)..<16 {
            h.set("x", [:], 1, at: second)
            h.tick(second)
        }
        #expect(h.engine.alerts.first?.flapping == false)
        #expect(h.sent["Flappy"]?.first?.status == .firing)
    }

    @Test("the weighted change ratio follows time order")
    func changeRatio() {
        // One change, newest: weight 1.2 over 4 transitions; oldest: 0.8.
        #expect(abs(AlertInstance.changeRatio([0, 0, 0, 0, 1], capacity: 5) - 1.2 / 4) < 1e-9)
        #expect(abs(AlertInstance.changeRatio([1, 0, 0, 0, 0], capacity: 5) - 0.8 / 4) < 1e-9)
        #expect(abs(AlertInstance.changeRatio([0, 1, 0, 1, 0], capacity: 5) - 1.0) < 1e-9)
        #expect(AlertInstance.changeRatio([2, 2, 2], capacity: 21) == 0)
    }

    @Test("vanished: a series that stopped reporting fires with all its labels and last value")
    func vanished() throws {
        let h = try RuleHarness(["r.lua": """
            local vigil = require "vigil"
            vigil.alert "GpuGone" {
              query = function(q) return q.vanished("gpu_temperature_celsius", "5s") end,
              summary = "GPU {{gpu}} ({{model}}) last seen at {{value}} °C",
            }
            """])
        for second in Int64(0)...3 {
            h.set("gpu_temperature_celsius", ["gpu": "0", "model": "H100", "uuid": "GPU-a"], 60, at: second)
            h.set("gpu_temperature_celsius", ["gpu": "1", "model": "A100", "uuid": "GPU-b"], 70, at: second)
        }
        h.set("gpu_temperature_celsius", ["gpu": "1", "model": "A100", "uuid": "GPU-b"], StaleMarker.value, at: 4)
        for second in Int64(4)...9 { h.set("gpu_temperature_celsius", ["gpu": "0", "model": "H100", "uuid": "GPU-a"], 60, at: second) }
        h.tick(6)
        #expect(h.firing("GpuGone").isEmpty, "seen 3 s ago: not yet")
        h.tick(9)
        let alert = try #require(h.firing("GpuGone").first)
        #expect(alert.labels == ["alertname": "GpuGone", "gpu": "1", "model": "A100", "uuid": "GPU-b", "severity": "warning"])
        #expect(alert.annotations["summary"] == "GPU 1 (A100) last seen at 70 °C")
        #expect(h.firing("GpuGone").count == 1)
    }

    @Test("no data: keep holds state, resolve resolves, fire fires an instance labelled reason=\"no data\"")
    func noData() throws {
        let h = try RuleHarness(["r.lua": """
            local vigil = require "vigil"
            vigil.alert "Keep" { query = "x", no_data = "keep" }
            vigil.alert "Resolve" { query = "x" }
            vigil.alert "Fire" { query = "y", no_data = "fire" }
            """])
        h.set("x", [:], 1, at: 0)
        h.tick(0)
        #expect(h.firing("Keep").count == 1 && h.firing("Resolve").count == 1)
        h.set("x", [:], StaleMarker.value, at: 1)
        h.tick(1)
        #expect(h.firing("Keep").count == 1)
        #expect(h.firing("Resolve").isEmpty)
        #expect(h.firing("Fire").first?.labels["reason"] == "no data")
    }

    @Test("evaluation error: keep holds state; fire fires reason=\"evaluation error\"; health says error with a traceback")
    func evaluationError() throws {
        let h = try RuleHarness(["r.lua": """
            local vigil = require "vigil"
            local broken = false
            vigil.alert "KeepOnError" { query = "x", fire = function(s)
              if s.value > 5 then error("boom at " .. s.value) end
              return true
            end }
            vigil.alert "FireOnError" { query = "x", on_error = "fire", fire = function(s)
              if s.value > 5 then local t = nil; return t.field end
              return false
            end }
            """])
        h.set("x", [:], 1, at: 0)
        h.tick(0)
        #expect(h.firing("KeepOnError").count == 1)
        h.set("x", [:], 9, at: 1)
        h.tick(1)
        #expect(h.firing("KeepOnError").count == 1, "state kept through the error")
        #expect(h.firing("FireOnError").first?.labels["reason"] == "evaluation error")
        let status = try #require(h.engine.rules.first { $0.name == "KeepOnError" })
        #expect(status.health == .error)
        #expect(status.lastError?.contains("r.lua:4: boom at 9") == true, "\(status.lastError ?? "")")
        #expect(status.lastError?.contains("stack traceback") == true)
    }

    @Test("quarantine: a rule failing 5 times in a row stops, fires VigilRuleFailing, retries with backoff")
    func quarantine() throws {
        let h = try RuleHarness(["r.lua": """
            local vigil = require "vigil"
            vigil.alert "Broken" { query = function(q) return q.nope() end }
            """])
        for second in Int64(0)..<5 { h.tick(second) }
        let status = try #require(h.engine.rules.first)
        #expect(status.health == .quarantined)
        #expect(status.quarantinedUntil == Int64(34_000))
        let failing = try #require(h.firing(RuleEngine.ruleFailingAlert).first)
        #expect(failing.labels["rule"] == "Broken")
        #expect(failing.labels["severity"] == "critical")
        #expect(h.store.instant(try SeriesSelector(parsing: #"vigil_rule_health{rule="Broken",health="quarantined"}"#), at: 4000).first?.value == 1)
        // Not evaluated while quarantined; retried at the backoff, failing again doubles it.
        h.tick(10)
        #expect(h.engine.rules.first?.evaluations == 5)
        h.tick(34)
        #expect(h.engine.rules.first?.evaluations == 6)
        #expect(h.engine.rules.first?.quarantinedUntil == Int64(94_000))
        // Fixing the file ends the quarantine at once, and the built-in alert resolves.
        try h.write("r.lua", #"local vigil = require "vigil"; vigil.alert "Broken" { query = "x" }"#)
        h.tick(35)
        #expect(h.engine.rules.first?.health == .ok)
        #expect(h.firing(RuleEngine.ruleFailingAlert).isEmpty)
    }

    @Test("reload: an edited file is live, timers of kept rules survive; a broken edit keeps the last good version")
    func reload() throws {
        let h = try RuleHarness(["r.lua": """
            local vigil = require "vigil"
            vigil.alert "Slow" { query = "x", pending = "10s" }
            """])
        h.set("x", [:], 1, at: 0)
        h.tick(0)
        #expect(h.engine.alerts.first?.state == .pending)
        try h.write("r.lua", """
            local vigil = require "vigil"
            vigil.alert "Slow" { query = "x", pending = "10s", summary = "new version" }
            vigil.alert "Added" { query = "x" }
            """)
        h.set("x", [:], 1, at: 5)
        h.tick(5)
        #expect(h.engine.alerts.first { $0.rule == "Slow" }?.activeAt == 0, "the pending timer survived the reload")
        #expect(h.firing("Added").count == 1)
        try h.write("r.lua", "local vigil = require 'vigil'\nvigil.alert 'Slow' { query = 'x', pendin = '1s' }\n")
        h.set("x", [:], 1, at: 10)
        h.tick(10)
        let file = try #require(h.engine.fileStatuses.first)
        #expect(file.loaded)
        #expect(file.error?.contains("unknown field 'pendin'") == true, "\(file.error ?? "")")
        #expect(file.error?.contains("r.lua:2:") == true)
        let slow = try #require(h.firing("Slow").first)
        #expect(slow.annotations["summary"] == "new version", "the last good version runs on")
        #expect(h.firing("Added").count == 1)
    }

    @Test("restart: pending timers and firing alerts come back from SQLite")
    func restart() throws {
        let h = try RuleHarness(["r.lua": """
            local vigil = require "vigil"
            vigil.alert "Pending" { query = "x", pending = "1m" }
            vigil.alert "Firing" { query = "x", severity = "critical" }
            """], database: true)
        h.set("x", ["host": "a"], 1, at: 0)
        h.tick(0)
        h.set("x", ["host": "a"], 1, at: 20)
        h.tick(20)
        h.engine.flush()
        // A new engine (the daemon restarted) on the same database.
        h.engine = h.makeEngine()
        h.set("x", ["host": "a"], 1, at: 40)
        h.tick(40)
        #expect(h.engine.alerts.first { $0.rule == "Pending" }?.activeAt == 0)
        #expect(h.engine.alerts.first { $0.rule == "Pending" }?.state == .pending)
        let firing = try #require(h.firing("Firing").first)
        #expect(firing.firedAt == 0)
        h.set("x", ["host": "a"], 1, at: 60)
        h.tick(60)
        #expect(h.firing("Pending").count == 1, "fires at 60 s as if never restarted")
        h.engine.flush()
        let history = try h.database!.alertHistory()
        #expect(history.contains { $0.rule == "Pending" && $0.toState == "firing" && $0.time == 60_000 })
    }

    @Test("restart: an alert whose series the empty store cannot show yet is held through the grace, then resolves")
    func restoreGrace() throws {
        let h = try RuleHarness(["r.lua": """
            local vigil = require "vigil"
            vigil.alert "Firing" { query = "x" }
            """], database: true)
        h.set("x", [:], 1, at: 0)
        h.tick(0)
        h.engine.flush()
        h.engine = h.makeEngine()
        // The store still has x (it is shared here), so make it stale: "no data" after the restart.
        h.set("x", [:], StaleMarker.value, at: 1)
        h.tick(100)
        #expect(h.firing("Firing").count == 1, "held: the store is still filling after the restart")
        h.tick(221)
        #expect(h.firing("Firing").isEmpty, "resolved once the grace (2 m) is over")
    }

    @Test("a memory error that leaves the state full makes the file load afresh; the others keep running")
    func exhaustedState() throws {
        let h = try RuleHarness(["hog.lua": """
            local vigil = require "vigil"
            local hoard = {}
            vigil.alert "Hog" { query = function(q)
              for i = 1, 1e7 do hoard[#hoard + 1] = string.rep("x", 64) .. i end
            end }
            vigil.alert "Fine" { query = "x" }
            """]) { $0.limits = LuaLimits(memoryBytes: 2 << 20) }
        h.set("x", [:], 1, at: 0)
        h.tick(0)
        let hog = try #require(h.engine.rules.first { $0.name == "Hog" })
        #expect(hog.health == .error)
        #expect(hog.lastError?.contains("memory limit exceeded") == true, "\(hog.lastError ?? "")")
        let file = try #require(h.engine.fileStatuses.first)
        #expect(file.memoryBytes < 1 << 20, "the state was loaded afresh: \(file.memoryBytes) bytes")
        h.set("x", [:], 1, at: 1)
        h.tick(1)
        #expect(h.firing("Fine").count == 1)
        #expect(h.engine.rules.first { $0.name == "Hog" }?.evaluations == 2, "counters survive the fresh load")
    }

    @Test("declaration mistakes are load errors naming file, line and field")
    func lint() throws {
        let cases: [(String, String)] = [
            ("vigil.alert 'A' { query = 'x', pending = 'soon' }", "pending must be a duration"),
            ("vigil.alert 'A' { query = 'x', summary = '{{value | kelvin}}' }", "unknown filter \"kelvin\""),
            ("vigil.alert 'A' { query = 'x', summary = '{{gpu' }", "unclosed {{"),
            ("vigil.alert 'A' { }", "query is required"),
            ("vigil.alert 'A' { query = 'x', no_data = 'ignore' }", "no_data must be \"keep\", \"resolve\" or \"fire\""),
            ("vigil.alert 'A' { query = 'x', fire = { severe = function() end } }", "fire's keys are levels"),
        ]
        for (body, expected) in cases {
            let h = try RuleHarness(["bad.lua": "local vigil = require 'vigil'\n" + body + "\n"])
            h.tick(0)
            let error = h.engine.fileStatuses.first?.error ?? ""
            #expect(error.contains(expected), "\(body) → \(error)")
            #expect(error.contains("bad.lua:2:"), "\(error)")
        }
    }
}

@Suite("annotation templates")
struct TemplateTests {
    @Test("labels, value and filters render")
    func render() throws {
        let labels = ["gpu": "3", "alertname": "X"]
        let cases: [(String, Double, String)] = [
            ("GPU {{gpu}} at {{value}} °C", 91, "GPU 3 at 91 °C"),
            ("{{ value | bytes }}", 1536, "1.5 KiB"),
            ("{{value|percent}}", 0.953, "95.3%"),
            ("{{value | duration}}", 5400, "1h30m"),
            ("{{value | si}}", 1_234_567, "1.23M"),
            ("{{value | fixed(2)}}", 3.14159, "3.14"),
            ("{{$labels.gpu}} {{alertname | upper}} {{missing}}.", 0, "3 X ."),
        ]
        for (source, value, expected) in cases {
            #expect(try Template(source).render(labels: labels, value: value) == expected)
        }
        #expect(Alert.fingerprint([:]) == "cbf29ce484222325")
    }
}
