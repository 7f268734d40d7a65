import ArgumentParser
import Logging
import ServiceLifecycle
import UnixSignals
import VigilCollectors
import VigilCore
import VigilRules
import VigilAllocator
import VigilBench
import VigilLua
import VigilState
import Foundation
import VigilServer
import VigilStore

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the daemon: collectors, the metrics store, alert rules and the HTTP server.",
        discussion: """
            Serves /metrics (Prometheus text format 0.0.4), /healthz, /api/v1/rules, /api/v1/alerts, the task API
            (/api/v1/tasks, /api/v1/queue), /api/v1/recommendations and /api/v1/reports on 127.0.0.1:9477 unless
            told otherwise. Runs the task allocator with the policy in RULES_DIR/policy.lua; tasks and their logs
            live in DATA_DIR. Runs with no configuration file. Plugins and rule files (alerts, recommendations,
            indicators) added to, changed in or removed from their folders take effect without a restart (SIGHUP
            reloads the rules at once). Alert states, silences, history and recommendations live in
            DATA_DIR/vigil.sqlite. SIGTERM or SIGINT stops it cleanly.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("Address to listen on, HOST:PORT (default 127.0.0.1:9477).", valueName: "address"))
    var listen: String?

    func validate() throws {
        if let listen, ListenAddress(parsing: listen) == nil {
            throw ValidationError("--listen must be HOST:PORT, for example 127.0.0.1:9477")
        }
    }

    func run() async throws {
        let daemon = try Daemon(global) { configuration in
            if let listen, let address = ListenAddress(parsing: listen) { configuration.listen = address }
        }
        let (configuration, logger, scheduler) = (daemon.configuration, daemon.logger, daemon.scheduler)
        // Plugins found now start with the built-ins; later changes follow within a second.
        daemon.plugins.scan()
        let database = try StateDatabase(dataDirectory: configuration.dataDirectory)  // bench results and tasks
        // The latest `vigil bench` results as metrics, for rules and for Prometheus.
        scheduler.registry.add(ScheduledCollector(BenchCollector(database: database), interval: 60_000, timeout: 10_000))
        let policy = PolicyScript(path: configuration.policyPath, store: daemon.store, clock: daemon.clock,
                                  limits: LuaLimits(configuration.lua), logger: logger)
        var allocatorOptions = Allocator.Options(logs: (configuration.dataDirectory as NSString).appendingPathComponent("tasks"),
                                                 costs: CostModel(configuration.costs))
        allocatorOptions.grace = configuration.allocator.graceMilliseconds
        let allocator = try Allocator(database: database, store: daemon.store, clock: daemon.clock, policy: policy,
                                      options: allocatorOptions, logger: logger)
        // Rules, recommendations and indicators read the allocator's history through `vigil.history`.
        let rules = try RuleService.make(configuration: configuration, store: daemon.store, clock: daemon.clock,
                                         history: AllocatorHistory(allocator: allocator, database: database),
                                         startAfter: { await scheduler.firstRound() }, logger: logger)
        let reports = ReportBuilder(allocator: allocator, rules: rules, store: daemon.store, clock: daemon.clock)
        let server = VigilHTTPServer.application(store: daemon.store, clock: daemon.clock, address: configuration.listen,
                                                 rules: rules, benchmarks: {
                                                     let history = BenchHistory(database: database)
                                                     let facts = HostFacts.detect()
                                                     let export = BenchHistory.Export(facts: facts, runs: try history.runs(host: facts.hostname))
                                                     return Data(try BenchHistory.encode(export).utf8)
                                                 }, allocator: allocator, reports: reports, logger: logger)
        logger.info("vigil starting", metadata: [
            "http.address": "\(configuration.listen)",
            "collectors": "\(scheduler.names.joined(separator: ","))",
            "rules_dir": "\(configuration.rulesDirectory)",
            "data_dir": "\(configuration.dataDirectory)",
            "version": "\(VigilCommand.version)",
        ])
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [
                .init(service: scheduler),
                .init(service: daemon.plugins),
                .init(service: rules),
                .init(service: ReloadOnHangup(rules: rules, logger: logger)),
                .init(service: AllocatorService(allocator: allocator, interval: configuration.allocator.intervalMilliseconds,
                                                startAfter: { await scheduler.firstRound() })),
                .init(service: server),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
        logger.info("vigil stopped")
    }
}

/// SIGHUP reloads the rules at once (the folder is also watched, so an edit is live within a second anyway).
struct ReloadOnHangup: Service {
    let rules: RuleService
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                logger.info("SIGHUP: reloading rules")
                rules.reload()
            }
        }
    }
}
