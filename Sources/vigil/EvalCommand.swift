import ArgumentParser
import Foundation
import VigilCollectors
import VigilCore
import VigilLua
import VigilRules
import VigilStore

struct EvalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Run Lua in the script sandbox against freshly collected metrics and print the result.",
        discussion: """
            The store is filled by a short collection first (two rounds one interval apart, so rate()
            has two samples). Examples:
              vigil eval 'return vigil.query.last("node_load1")'
              vigil eval 'return vigil.query.rate("node_cpu_seconds_total{mode=\\"idle\\"}", "1m")'
              vigil eval --file rules/explore.lua
            `vigil` is preloaded (also available through require "vigil"). Errors go to stderr with
            file:line and a traceback, and the exit status is 1.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Lua source to run (or use --file).")
    var source: String?

    @Option(name: .long, help: ArgumentHelp("Lua file to run.", valueName: "file"))
    var file: String?

    @Option(name: .long, help: "Collection rounds before the script runs (0: an empty store).")
    var rounds: Int = 2

    @Flag(name: .long, help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        if (source == nil) == (file == nil) { throw ValidationError("give either Lua source or --file, not both or neither") }
        if rounds < 0 { throw ValidationError("--rounds must be ≥ 0") }
    }

    func run() async throws {
        let daemon = try Daemon(global)
        let configuration = daemon.configuration
        let interval = configuration.collectors.defaultIntervalMilliseconds
        for round in 0..<rounds {
            if round > 0 { try await Task.sleep(for: .milliseconds(interval)) }
            await daemon.scheduler.collectOnce()
        }
        let state = try LuaState(name: file ?? "eval", limits: LuaLimits(configuration.lua),
                                 rulesDirectory: configuration.rulesDirectory, logger: daemon.logger)
        state.printHandler = { print($0) }
        VigilLuaModule.install(in: state, store: daemon.store, clock: daemon.clock)
        state.setGlobal("vigil", .nil)
        _ = try? state.run("vigil = require 'vigil'", chunkName: "=vigil.eval")
        let results: [LuaValue]
        do {
            if let file {
                results = try state.runFile(file)
            } else {
                results = try state.run(source!, chunkName: "=eval")
            }
        } catch let error as LuaError {
            FileHandle.standardError.write(Data("vigil: \(error.fullDescription)\n".utf8))
            throw ExitCode(1)
        }
        for value in results {
            print(json ? JSONValue.render(value) : LuaFormat.describe(value))
        }
    }
}

/// JSON text of a Lua value (tables with non-string keys become arrays of pairs).
enum JSONValue {
    static func render(_ value: LuaValue) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: object(value), options: [.prettyPrinted, .sortedKeys, .fragmentsAllowed]) else {
            return "null"
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func object(_ value: LuaValue) -> Any {
        switch value {
        case .nil, .opaque, .function, .hostFunction: return NSNull()
        case .boolean(let b): return b
        case .integer(let i): return i
        case .number(let d): return d.isFinite ? d : NSNull()
        case .string(let s): return s.string
        case .array(let items): return items.map(object)
        case .table(let dict):
            var out: [String: Any] = [:]
            for (key, item) in dict {
                let name: String = key.stringValue ?? (key.intValue.map(String.init) ?? LuaFormat.describe(key))
                out[name] = object(item)
            }
            return out
        }
    }
}
