import Foundation
import Logging
import VigilCore
import VigilLua
import VigilRules
import VigilStore

enum RuleBenchmark {
    /// 1,000 simple rules evaluated every second by the real engine (state machine, health, ALERTS and
    /// vigil_rule_* export included), against the same 1,000 queries and comparisons made from Swift.
    static func run(rules: Int = 1000, rounds: Int = 60) {
        print("== rules")
        let folder = NSTemporaryDirectory() + "vigil-bench-rules-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let start: Timestamp = 1_800_000_000_000
        let store = MetricStore()
        var generator = Generator(state: 42)
        var refs: [SeriesRef] = []
        for i in 0..<rules {
            refs.append(store.series(Labels(name: "bench_temperature_celsius", ["gpu": "\(i)", "model": "H100"])))
        }
        // One sample per series per second; 2 % of them above the threshold.
        func fill(_ t: Timestamp) {
            for (i, ref) in refs.enumerated() { store.append(ref, t, i % 50 == 0 ? 91 : Double(60 + generator.below(20))) }
        }
        var selectorSource = "local vigil = require 'vigil'\n"
        var functionSource = "local vigil = require 'vigil'\n"
        for i in 0..<rules {
            selectorSource += "vigil.alert 'Hot\(i)' { every = '1s', query = 'bench_temperature_celsius{gpu=\"\(i)\"}', fire = function(s) return s.value > 85 end }\n"
            functionSource += "vigil.alert 'Hot\(i)' { every = '1s', query = function(q) return q.value('bench_temperature_celsius{gpu=\"\(i)\"}') end, fire = function(s) return s.value > 85 end }\n"
        }
        let selectors = (0..<rules).map { try! SeriesSelector(parsing: "bench_temperature_celsius{gpu=\"\($0)\"}") }

        func engine(_ source: String) -> RuleEngine {
            try? source.write(toFile: folder + "/bench.lua", atomically: true, encoding: .utf8)
            var options = RuleEngineOptions(rulesDirectory: folder)
            options.defaultInterval = 1000
            var logger = Logger(label: "bench")
            logger.logLevel = .error
            let engine = RuleEngine(store: store, options: options, logger: logger)
            engine.reload(at: start)
            return engine
        }
        let selectorEngine = engine(selectorSource)
        let functionEngine = engine(functionSource)
        var t = start
        fill(t)
        // Warm up: first evaluations create instances and metric series.
        for _ in 0..<3 {
            t += 1000
            fill(t)
            selectorEngine.tick(at: t)
            functionEngine.tick(at: t)
        }
        var swiftRounds: [Double] = [], selectorRounds: [Double] = [], functionRounds: [Double] = []
        var fired = 0
        for _ in 0..<rounds {
            t += 1000
            fill(t)
            swiftRounds.append(measure {
                for selector in selectors {
                    for sample in store.instant(selector, at: t) where sample.value > 85 { fired += 1 }
                }
            })
            selectorRounds.append(measure { selectorEngine.tick(at: t) })
            functionRounds.append(measure { functionEngine.tick(at: t) })
        }
        consume(fired)
        let firing = selectorEngine.alerts.filter { $0.state == .firing }.count
        func med(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let (base, selector, function) = (med(swiftRounds), med(selectorRounds), med(functionRounds))
        print("\(rules) rules every 1 s, \(firing) firing, median of \(rounds) rounds:")
        row("baseline: the same queries and comparisons from Swift", "\(format(base * 1000, 3)) ms/round",
            "\(format(base * 100, 2)) % of one core")
        row("engine, query = \"selector\", fire = function(s)", "\(format(selector * 1000, 3)) ms/round",
            "\(format(selector * 100, 2)) % of one core; overhead \(format((selector - base) / Double(rules) * 1e6, 3)) µs/rule")
        row("engine, query = function(q) return q.value(…) end", "\(format(function * 1000, 3)) ms/round",
            "\(format(function * 100, 2)) % of one core; overhead \(format((function - base) / Double(rules) * 1e6, 3)) µs/rule")
        luaCall(refs: refs, store: store, at: t)
    }

    /// The Lua part of a simple rule on its own: the call the engine makes per series of a selector
    /// query (the series' table made once, its value set, `fire(s)` run with every limit armed).
    static func luaCall(refs: [SeriesRef], store: MetricStore, at t: Timestamp) {
        do {
            let state = try LuaState(name: "bench.lua", logger: Logger(label: "bench"))
            let made = try state.run("""
                return function(f, s, v) s.value = v; return f(s) end, function(s) return s.value > 85 end
                """, chunkName: "bench.lua")
            guard case .function(let caller) = made[0], case .function(let fire) = made[1] else { return }
            let tables = refs.map { state.reference(to: .table(["labels": .table(["gpu": .string($0.labels["gpu"] ?? "")])])) }
            let values = refs.map { store.lastValue($0, at: t) ?? 0 }
            let calls = 200
            var fired = 0
            let time = median(runs: 5) {
                for _ in 0..<calls {
                    for i in tables.indices where (try? state.call(caller, [.function(fire), .function(tables[i]), .number(values[i])]))?.first == .boolean(true) {
                        fired += 1
                    }
                }
            }
            consume(fired)
            row("Lua overhead per rule: fire(s) on the reused series table", "\(format(time / Double(calls * tables.count) * 1e6, 3)) µs/rule")
        } catch {
            print("lua call benchmark failed: \(error)")
        }
    }
}
