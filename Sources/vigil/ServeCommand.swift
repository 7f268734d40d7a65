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
            Serves the dashboard (http://127.0.0.1:9477/), /metrics (Prometheus text format 0.0.4), /healthz and the JSON
            API under /api/v1 (described at /api/v1/openapi.json) on 127.0.0.1:9477 unless told otherwise. Changes
            through the API need the token written to DATA_DIR/api-token (mode 0600) at the first start; the CLI reads
            it. Runs the task allocator with the policy in RULES_DIR/policy.lua; tasks and their logs live in DATA_DIR.
            Runs with no configuration file. Plugins and rule files (alerts, recommendations, indicators) added to,
            changed in or removed from their folders take effect without a restart (SIGHUP reloads the rules at once).
            Alert states, silences, history and recommendations live in DATA_DIR/vigil.sqlite. SIGTERM or SIGINT
            stops it cleanly.
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
                                         startAfter: { await scheduler.firstRound() }, logger: logger, liveness: daemon.liveness)
        let reports = ReportBuilder(allocator: allocator, rules: rules, store: daemon.store, clock: daemon.clock)
        // Mutations (and reads from beyond loopback) need this token; the CLI reads it from the same folder.
        let token = try APIToken.loadOrCreate(dataDirectory: configuration.dataDirectory)
        var services = VigilHTTPServer.Services(store: daemon.store, clock: daemon.clock, rules: rules, benchmarks: {
            let history = BenchHistory(database: database)
            let facts = HostFacts.detect()
            let export = BenchHistory.Export(facts: facts, runs: try history.runs(host: facts.hostname))
            return Data(try BenchHistory.encode(export).utf8)
        }, allocator: allocator, reports: reports, database: database, token: token)
        services.version = VigilCommand.version
        if let chartJS = configuration.chartJS { services.dashboard.chartJS = [chartJS] }
        services.allowedHosts = Set(configuration.http.allowedHosts + [configuration.listen.host.lowercased()])
        services.connections.total = configuration.http.maxConnections
        services.connections.perPeer = configuration.http.maxConnectionsPerPeer
        services.connections.headerTimeoutMilliseconds = configuration.http.headerTimeoutMilliseconds
        services.connections.idleTimeoutMilliseconds = configuration.http.idleTimeoutMilliseconds
        services.connections.fitDescriptors()
        services.liveness = daemon.liveness
        let server = VigilHTTPServer.application(services, address: configuration.listen, logger: logger,
                                                 onRunning: { SystemdNotifier.notify("READY=1\nSTATUS=running") })
        logger.info("vigil starting", metadata: [
            "http.address": "\(configuration.listen)",
            "collectors": "\(scheduler.names.joined(separator: ","))",
            "rules_dir": "\(configuration.rulesDirectory)",
            "data_dir": "\(configuration.dataDirectory)",
            "dashboard": "http://\(configuration.listen)/",
            "version": "\(VigilCommand.version)",
        ])
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [
                .init(service: scheduler),
                .init(service: daemon.plugins),
                .init(service: rules),
                .init(service: SystemdAndReload(global: global, listen: listen.flatMap(ListenAddress.init(parsing:)), daemon: daemon,
                                                rules: rules, logger: logger)),
                .init(service: AllocatorService(allocator: allocator, interval: configuration.allocator.intervalMilliseconds,
                                                startAfter: { await scheduler.firstRound() }, liveness: daemon.liveness)),
                .init(service: server),
            ] + configuration.remoteWrite.compactMap { target in
                guard let url = URL(string: target.url) else { return nil }
                let options = RemoteWriter.Options(url: url, interval: target.intervalMilliseconds, timeout: target.timeoutMilliseconds,
                                                   queueSamples: target.queueSamples)
                return .init(service: RemoteWriter(options: options, store: daemon.store, clock: daemon.clock,
                                                   startAfter: { await scheduler.firstRound() }, logger: logger))
            },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        let hardStop = HardStop.arm(after: .seconds(25), logger: logger)
        try await group.run()
        for source in hardStop { source.cancel() }
        logger.info("vigil stopped")
    }
}

/// The last word on SIGTERM and SIGINT: if the graceful stop has not ended the process within the stop timeout
/// (work stuck in a thread, a pool with no free thread to run the shutdown on), it ends here. It watches the
/// signals on a dispatch queue of its own, outside Swift's cooperative pool, so it runs however stuck that is;
/// 25 s is inside the service unit's TimeoutStopSec=30s, so systemd never has to SIGKILL the daemon.
enum HardStop {
    static func arm(after timeout: DispatchTimeInterval, logger: Logger) -> [any DispatchSourceSignal] {
        let queue = DispatchQueue(label: "vigil.hard-stop")
        var sources: [any DispatchSourceSignal] = []
        for signal in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: signal, queue: queue)
            source.setEventHandler {
                queue.asyncAfter(deadline: .now() + timeout) {
                    logger.critical("the graceful stop did not finish within the stop timeout; exiting now", metadata: ["timeout": "\(timeout)"])
                    _exit(1)
                }
            }
            source.resume()
            sources.append(source)
        }
        return sources
    }
}

/// Talks to systemd and answers SIGHUP: a reload re-reads the configuration (built-in collectors whose
/// settings changed are replaced; settings that need a restart are named in the log), rescans the plugins
/// folder and reloads the rules, while collection goes on. Sends `RELOADING=1` then `READY=1` around it,
/// `WATCHDOG=1` when systemd asks for keep-alives, and `STOPPING=1` when the daemon begins to stop.
struct SystemdAndReload: Service {
    let global: GlobalOptions
    let listen: ListenAddress?
    let daemon: Daemon
    let rules: RuleService
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        let watchdog = Task {
            guard let interval = SystemdNotifier.watchdogInterval else { return }
            var warned = false
            while !Task.isCancelled {
                // Fed only while every part makes progress: a stuck rule engine or allocator gets the daemon restarted.
                let stalled = daemon.liveness.stalled()
                if stalled.isEmpty {
                    SystemdNotifier.notify("WATCHDOG=1")
                    warned = false
                } else if !warned {
                    warned = true
                    logger.critical("parts of the daemon stopped making progress; the systemd watchdog is no longer fed",
                                    metadata: ["stalled": "\(stalled.map(\.part).joined(separator: ","))"])
                }
                try? await Task.sleep(for: interval)
            }
        }
        defer { watchdog.cancel() }
        await withGracefulShutdownHandler {
            await cancelWhenGracefulShutdown {
                var current = daemon.configuration
                for await _ in signals {
                    SystemdNotifier.reloading()
                    current = reload(from: current)
                    SystemdNotifier.notify("READY=1\nSTATUS=running; reloaded at \(Date())")
                }
            }
        } onGracefulShutdown: {
            SystemdNotifier.notify("STOPPING=1\nSTATUS=stopping")
        }
    }

    /// One reload; returns the configuration now in force.
    private func reload(from old: VigilConfiguration) -> VigilConfiguration {
        logger.info("SIGHUP: reloading the configuration, plugins and rules")
        var configuration = old
        do {
            var loaded = try global.loadConfiguration()
            if let listen { loaded.listen = listen }
            configuration = loaded
        } catch {
            logger.error("SIGHUP: the configuration did not load; the running one stays", metadata: ["error": "\(error)"])
        }
        if configuration.collectors != old.collectors {
            let made = Dictionary(BuiltinCollectors.make(configuration.collectors, store: daemon.store, clock: daemon.clock, logger: logger)
                .map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            for name in BuiltinCollectors.names where configuration.collectors.settings(for: name) != old.collectors.settings(for: name)
                || configuration.collectors.nvmlLibrary != old.collectors.nvmlLibrary && name == "nvml" {
                if let scheduled = made[name] {
                    daemon.scheduler.registry.add(scheduled)
                } else {
                    daemon.scheduler.registry.remove(named: name)
                }
                logger.info("SIGHUP: collector settings applied", metadata: ["collector": "\(name)"])
            }
        }
        let needRestart = [
            ("listen", configuration.listen != old.listen), ("http", configuration.http != old.http), ("data_dir", configuration.dataDirectory != old.dataDirectory),
            ("rules_dir", configuration.rulesDirectory != old.rulesDirectory),
            ("plugins_dir", configuration.pluginsDirectory != old.pluginsDirectory), ("store", configuration.store != old.store),
            ("lua", configuration.lua != old.lua), ("rules", configuration.rules != old.rules),
            ("alerting", configuration.alerting != old.alerting), ("costs", configuration.costs != old.costs),
            ("allocator", configuration.allocator != old.allocator), ("remote_write", configuration.remoteWrite != old.remoteWrite),
            ("query_sources", configuration.querySources != old.querySources), ("dashboard", configuration.chartJS != old.chartJS),
        ].filter(\.1).map(\.0)
        if !needRestart.isEmpty {
            logger.warning("SIGHUP: these settings changed and take effect at the next restart", metadata: ["settings": "\(needRestart.joined(separator: ","))"])
        }
        let plugins = daemon.plugins.scan()
        rules.reload()
        logger.info("SIGHUP: reloaded", metadata: ["plugins": "\(plugins.count)"])
        // The rest of the configuration stays as it was until a restart.
        var inForce = old
        inForce.collectors = configuration.collectors
        return inForce
    }
}
