import Foundation
import Logging
import VigilCore
import VigilLua
import VigilRules
import VigilStore

enum LuaBenchmarks {
    /// A rule-like call: one scalar query and a comparison, through `LuaState.call` with every limit
    /// armed, against the same query made from Swift.
    static func run() {
        print("== lua")
        let clock = ManualWallClock(1_800_000_060_000)
        let store = MetricStore()
        for gpu in 0..<8 {
            let ref = store.series(Labels(name: "gpu_temperature_celsius", ["gpu": "\(gpu)", "model": "NVIDIA H100"]))
            for second in 0..<60 { store.append(ref, 1_800_000_000_000 + Int64(second) * 1000, Double(50 + gpu + second % 3)) }
        }
        do {
            let state = try LuaState(name: "bench.lua", logger: Logger(label: "bench"))
            VigilLuaModule.install(in: state, store: store, clock: clock)
            let made = try state.run("""
                local q = require("vigil").query
                return function() return q.value('gpu_temperature_celsius{gpu="3"}') > 80 end,
                       function() return false end,
                       function() return q.scalar(q.last('gpu_temperature_celsius{gpu="3"}')) > 80 end
                """, chunkName: "bench.lua")
            guard case .function(let rule) = made[0], case .function(let empty) = made[1], case .function(let vector) = made[2] else {
                fatalError("bench.lua did not return functions")
            }
            let calls = 200_000
            let selector = try SeriesSelector(parsing: #"gpu_temperature_celsius{gpu="3"}"#)
            var fired = 0
            let swiftTime = median(runs: 3) {
                for _ in 0..<calls {
                    let refs = store.select(selector)
                    if refs.count == 1, let v = store.lastValue(refs[0], at: clock.now()), v > 80 { fired += 1 }
                }
            }
            let ruleTime = median(runs: 3) {
                for _ in 0..<calls { if (try? state.call(rule))?.first == .boolean(true) { fired += 1 } }
            }
            let emptyTime = median(runs: 3) {
                for _ in 0..<calls { _ = try? state.call(empty) }
            }
            let vectorTime = median(runs: 3) {
                for _ in 0..<calls { _ = try? state.call(vector) }
            }
            consume(fired)
            let perCall = { (t: Double) in t / Double(calls) * 1e6 }
            print("rule-like call, one scalar query (\(calls) calls, median of 3):")
            row("baseline: the same query from Swift", "\(format(perCall(swiftTime), 3)) µs/call")
            row("Lua: q.value(sel) > 80", "\(format(perCall(ruleTime), 3)) µs/call",
                "Lua overhead \(format(perCall(ruleTime - swiftTime), 3)) µs/call")
            row("Lua: empty function (the call itself, limits armed)", "\(format(perCall(emptyTime), 3)) µs/call")
            row("Lua: q.scalar(q.last(sel)) > 80 (vector tables)", "\(format(perCall(vectorTime), 3)) µs/call",
                "overhead \(format(perCall(vectorTime - swiftTime), 3)) µs/call")
        } catch {
            print("lua benchmark failed: \(error)")
        }
    }
}
