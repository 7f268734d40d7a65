import ArgumentParser
import Foundation
import Logging
import VigilCollectors
import VigilCore
import VigilLua
import VigilStore

@main
struct VigilCommand: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "vigil",
        abstract: "Monitoring, alerting and task allocation for shared GPU hosts.",
        discussion: """
            Collectors sample the host into an in-memory store; Lua scripts query it. Start with
            `vigil serve` (metrics on http://127.0.0.1:9477/metrics) or explore with `vigil eval`.
            """,
        version: version,
        subcommands: [ServeCommand.self, CollectCommand.self, EvalCommand.self, GPUsCommand.self, PluginsCommand.self,
                      RulesCommand.self, AlertsCommand.self, SilenceCommand.self, BenchCommand.self, SimCommand.self,
                      SubmitCommand.self, QueueCommand.self, TaskCommand.self, DrainCommand.self, UndrainCommand.self,
                      ReportCommand.self, RecommendationsCommand.self, TopCommand.self, DashboardCommand.self, ServiceUnitCommand.self]
    )
}

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Configuration file (YAML). Without one, embedded defaults are used.", valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical.", valueName: "level"))
    var logLevel: String = "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    /// The configuration: embedded defaults, overridden by the file when one is given.
    /// The configuration: `--config`, else under systemd (`ConfigurationDirectory=`) its `vigil.yml` when there
    /// is one, else the embedded defaults. Under systemd the folders left at their defaults move to the
    /// service's: data to `$STATE_DIRECTORY` (/var/lib/vigil), rules and plugins under `$CONFIGURATION_DIRECTORY`
    /// (/etc/vigil).
    func loadConfiguration() throws -> VigilConfiguration {
        let environment = ProcessInfo.processInfo.environment
        // systemd passes colon-separated lists; Vigil's unit names one folder each.
        func folder(_ name: String) -> String? {
            environment[name].flatMap { $0.split(separator: ":").first.map(String.init) }
        }
        let configurationFolder = folder("CONFIGURATION_DIRECTORY")
        let path = config ?? configurationFolder.map { ($0 as NSString).appendingPathComponent("vigil.yml") }
            .flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }
        var configuration = VigilConfiguration()
        if let path {
            do {
                configuration = try ConfigurationLoader.load(path: path)
            } catch let error as VigilError {
                throw ValidationError(error.description)
            }
        }
        let defaults = VigilConfiguration()
        if let state = folder("STATE_DIRECTORY"), configuration.dataDirectory == defaults.dataDirectory {
            configuration.dataDirectory = state
        }
        // Absolute from here on: task folders and VIGIL_TASK_DIR must name the same place from any working folder
        // (a task's wrapper writes its exit status there), and a SIGHUP re-read must resolve to the same folder.
        configuration.dataDirectory = Self.absolute(configuration.dataDirectory)
        if let configurationFolder {
            if configuration.rulesDirectory == defaults.rulesDirectory {
                configuration.rulesDirectory = (configurationFolder as NSString).appendingPathComponent("rules")
            }
            if configuration.pluginsDirectory == defaults.pluginsDirectory {
                configuration.pluginsDirectory = (configurationFolder as NSString).appendingPathComponent("plugins")
            }
        }
        return configuration
    }

    /// `path` against the folder the command started in, normalised.
    static func absolute(_ path: String) -> String {
        let full = path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
        return (full as NSString).standardizingPath
    }

    /// Sets up logging once per process (swift-log allows one bootstrap) and returns the root logger.
    func makeLogger() -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingBootstrap.once(level: level)
        var logger = Logger(label: "vigil")
        logger.logLevel = level
        return logger
    }
}

enum LoggingBootstrap {
    nonisolated(unsafe) private static var done = false

    static func once(level: Logger.Level) {
        guard !done else { return }
        done = true
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// What every command starts from: the configuration, the root logger, a store and the built-in
/// collectors scheduled to fill it.
struct Daemon {
    let configuration: VigilConfiguration
    let logger: Logger
    let clock = SystemWallClock()
    let store: MetricStore
    let scheduler: CollectorScheduler
    /// Progress of the collectors, the rule engine and the allocator, which /healthz and the watchdog read.
    let liveness = Liveness()
    /// Keeps the scheduler's registry in step with the plugins folder.
    let plugins: PluginHost

    init(_ global: GlobalOptions, adjust: (inout VigilConfiguration) -> Void = { _ in }) throws {
        var configuration = try global.loadConfiguration()
        adjust(&configuration)
        self.configuration = configuration
        logger = global.makeLogger()
        store = MetricStore(configuration.store)
        scheduler = CollectorScheduler(collectors: BuiltinCollectors.make(configuration.collectors, store: store,
                                                                               clock: clock, logger: logger),
                                       store: store, clock: clock, logger: logger, liveness: liveness)
        plugins = PluginHost(directory: configuration.pluginsDirectory, registry: scheduler.registry,
                             defaults: configuration.collectors, luaLimits: LuaLimits(configuration.lua), logger: logger,
                             crashMarkers: (configuration.dataDirectory as NSString).appendingPathComponent("native-plugins"))
    }
}
