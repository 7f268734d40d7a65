import Foundation
import Logging
import Testing
import VigilCollectors
import VigilCore
import VigilLua
import VigilStore
@testable import VigilRules

private let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private func state(_ store: MetricStore, _ clock: any WallClock) throws -> LuaState {
    let state = try LuaState(name: "query.lua", logger: Logger(label: "test"))
    VigilLuaModule.install(in: state, store: store, clock: clock)
    try state.run("vigil = require 'vigil'", chunkName: "setup.lua")
    return state
}

@Suite("the vigil Lua module")
struct VigilLuaModuleTests {
    @Test("queries return plain tables with hand-computed values")
    func queries() throws {
        let clock = ManualWallClock(100_000)
        let store = MetricStore()
        for gpu in 0..<2 {
            let temperature = store.series(Labels(name: "gpu_temperature_celsius", ["gpu": "\(gpu)", "model": "H100"]))
            let energy = store.series(Labels(name: "gpu_energy_joules_total", ["gpu": "\(gpu)"]))
            for second in 41...100 {
                store.append(temperature, Int64(second) * 1000, Double(60 + gpu * 10 + second % 2))
                store.append(energy, Int64(second) * 1000, Double((gpu + 1) * 300 * second))
            }
        }
        let lua = try state(store, clock)
        let result = try lua.run("""
            local q = vigil.query
            local hot = q.max_over_time('gpu_temperature_celsius{gpu="1"}', "1m")
            local power = q.sum(q.rate("gpu_energy_joules_total", 30), { by = {} })
            local avg = q.avg(q.last("gpu_temperature_celsius"), { by = { "model" } })
            local top = q.topk(1, q.last("gpu_temperature_celsius"))
            return hot[1].value, hot[1].labels.gpu, hot[1].name, q.scalar(power), avg[1].labels.model, avg[1].value,
                   top[1].labels.gpu, #q.series("gpu_temperature_celsius"), vigil.now()
            """, chunkName: "q.lua")
        // GPU 1 alternates 70/71; 300 + 600 J/s together; last values 60 and 70 (second 100 is even).
        #expect(result == [.number(71), "1", .nil, .number(900), "H100", .number(65), "1", .integer(2), .number(100)])
    }

    @Test("script mistakes raise with Lua's wording at the script's line")
    func errors() throws {
        let lua = try state(MetricStore(), ManualWallClock())
        let cases: [(String, String)] = [
            ("local v = vigil.query.rate('x')", "e.lua:1: bad argument #2 to 'rate' (duration such as \"5m\" or seconds expected (0s to 100y), got nil)"),
            ("local v = vigil.query.last('x{a=\"1\"')", "e.lua:1: bad argument #1 to 'last' (expected , or } at position"),
            ("local v = vigil.query.last()", "e.lua:1: bad argument #1 to 'last' (string expected, got no value)"),
            ("local v = vigil.query.last(nil)", "e.lua:1: bad argument #1 to 'last' (string expected, got nil)"),
            ("local v = vigil.query.sum(42)", "e.lua:1: bad argument #1 to 'sum' (vector (table) expected, got number)"),
            ("local v = vigil.query.value({})", "e.lua:1: bad argument #1 to 'value' (string expected, got table)"),
            ("local v = vigil.query.value('x{a=~\"(\"}')", "e.lua:1: bad argument #1 to 'value' (invalid regular expression"),
        ]
        for (source, message) in cases {
            do {
                try lua.run(source, chunkName: "e.lua")
                Issue.record("\(source) succeeded")
            } catch let error as LuaError {
                #expect(error.description.hasPrefix(message), "\(error.description)")
            }
        }
        // An unknown metric is not an error: an empty vector.
        #expect(try lua.run("return #vigil.query.last('nothing_here')", chunkName: "e.lua") == [.integer(0)])
    }

    @Test("every registered function is documented in rules/README.md and declared in vigil.meta.lua")
    func documented() throws {
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("rules/README.md"), encoding: .utf8)
        let meta = try String(contentsOf: repositoryRoot.appendingPathComponent("rules/vigil.meta.lua"), encoding: .utf8)
        for name in VigilLuaModule.functionNames {
            #expect(readme.contains("`\(name)`") || readme.contains("### `\(name)"), "\(name) has no entry in rules/README.md")
            #expect(meta.contains("function \(name)("), "\(name) has no declaration in rules/vigil.meta.lua")
        }
        // And the module has no function the list forgets.
        let lua = try state(MetricStore(), ManualWallClock())
        let listed = try lua.run("""
            local names = {}
            for k in pairs(vigil) do if type(vigil[k]) == 'function' then names[#names + 1] = 'vigil.' .. k end end
            for k in pairs(vigil.query) do names[#names + 1] = 'vigil.query.' .. k end
            for k in pairs(vigil.format) do names[#names + 1] = 'vigil.format.' .. k end
            for k in pairs(vigil.history) do names[#names + 1] = 'vigil.history.' .. k end
            for k in pairs(vigil.prometheus) do names[#names + 1] = 'vigil.prometheus.' .. k end
            table.sort(names)
            return names
            """, chunkName: "list.lua")
        #expect(listed.first?.arrayValue?.compactMap(\.stringValue) == VigilLuaModule.functionNames.sorted())
        // Every field of vigil.alert has a row in the field table.
        for field in AlertRuleDefinition.fields {
            #expect(readme.contains("| `\(field)`") || readme.contains(", `\(field)` |"), "vigil.alert field \(field) is not documented")
            #expect(meta.contains("---@field \(field) "), "vigil.alert field \(field) is not in vigil.meta.lua")
        }
        for field in RecommendDefinition.fields.union(IndicatorDefinition.fields) {
            #expect(readme.contains("| `\(field)` |"), "vigil.recommend or vigil.indicator field \(field) is not documented")
            #expect(meta.contains("---@field \(field) "), "vigil.recommend or vigil.indicator field \(field) is not in vigil.meta.lua")
        }
    }

    @Test("every vigil.alert, vigil.recommend and vigil.indicator example in rules/README.md loads as a rule file")
    func alertExamplesLoad() throws {
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("rules/README.md"), encoding: .utf8)
        let blocks = readme.components(separatedBy: "```lua\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
            .filter { $0.contains("vigil.alert") || $0.contains("vigil.recommend") || $0.contains("vigil.indicator") }
        #expect(blocks.count >= 6)
        let folder = NSTemporaryDirectory() + "vigil-readme-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for (index, block) in blocks.enumerated() {
            let path = folder + "/example\(index).lua"
            try ("local vigil = require 'vigil'\n" + block).write(toFile: path, atomically: true, encoding: .utf8)
            if case .failure(let error) = RuleEngine.check(path: path, logger: Logger(label: "test")) {
                Issue.record("example failed to load: \(error)\n\(block)")
            }
        }
    }

    @Test("every example in rules/README.md runs against real collected metrics")
    func examplesRun() async throws {
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("rules/README.md"), encoding: .utf8)
        let blocks = readme.components(separatedBy: "```lua\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
        #expect(blocks.count >= 10)
        let store = MetricStore()
        let clock = SystemWallClock()
        let scheduler = CollectorScheduler(collectors: [ScheduledCollector(ProcfsCollector()), ScheduledCollector(NetCollector())],
                                           store: store, clock: clock, logger: Logger(label: "test"))
        let now = clock.now()
        await scheduler.collectOnce(at: now - 2000)
        await scheduler.collectOnce(at: now - 1000)
        let lua = try state(store, clock)
        for block in blocks where block.contains("return") && !block.contains("{ { name =") && !block.contains("vigil.alert") && !block.contains("vigil.policy")
            && !block.contains("vigil.recommend") && !block.contains("vigil.indicator") {
            do {
                let result = try lua.run(block, chunkName: "README.md")
                #expect(!result.isEmpty, "example returned nothing:\n\(block)")
            } catch {
                Issue.record("example failed: \(error)\n\(block)")
            }
        }
    }
}
