import ArgumentParser
import Foundation
import Logging
import VigilCollectors
import VigilCore
import VigilLua

struct PluginsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugins",
        abstract: "List the collector plugins in the plugins folder and try each once.",
        discussion: """
            Reads every plugin.yml below the plugins folder (plugins_dir, default ./plugins), reports manifests \
            that do not load with their file and line, and runs each plugin once: its series count and \
            duration, or what went wrong (timeout, crash, bad output with its line number). Exits with 1 when \
            any plugin failed.
            """
    )

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let configuration = try global.loadConfiguration()
        var logger = global.makeLogger()
        if logger.logLevel == .info { logger.logLevel = .critical }
        let registry = CollectorRegistry()
        let host = PluginHost(directory: configuration.pluginsDirectory, registry: registry, defaults: configuration.collectors,
                              luaLimits: LuaLimits(configuration.lua), logger: logger)
        let found = host.scan()
        var rows = [["Plugin", "Kind", "Every", "Result", "Manifest"]]
        var failed = false
        for status in found {
            let manifest = status.manifest
            if status.error == nil && !status.running {
                rows.append([status.name ?? "?", status.kind ?? "?", "", "disabled (enabled: false)", manifest])
                continue
            }
            guard let name = status.name, let entry = registry.entries.first(where: { $0.name == name }) else {
                rows.append([status.name ?? "?", status.kind ?? "?", "", "not loaded: \(status.error ?? "unknown")", manifest])
                failed = true
                continue
            }
            let start = ContinuousClock.now
            let result: String
            do {
                let batch = try entry.scheduled.collector.collect()
                let elapsed = ContinuousClock.now - start
                let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
                result = "ok: \(batch.count) series in \(String(format: "%.1f", ms)) ms"
            } catch {
                result = "failed: \(error)"
                failed = true
            }
            let note = status.error.map { " (current manifest not loaded: \($0))" } ?? ""
            rows.append([name, status.kind ?? "?", DurationParser.format(milliseconds: entry.scheduled.interval), result + note, manifest])
        }
        if found.isEmpty {
            print("No plugins in \(configuration.pluginsDirectory) (each plugin is a folder with a plugin.yml).")
        } else {
            print(TextTable.render(rows, rightAligned: []), terminator: "")
        }
        if failed { throw ExitCode(1) }
    }
}
