import ArgumentParser
import Logging
import ServiceLifecycle
import UnixSignals
import VigilCollectors
import VigilCore
import VigilServer
import VigilStore

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the daemon: collectors, the metrics store and the HTTP server.",
        discussion: """
            Serves /metrics (Prometheus text format 0.0.4) and /healthz on 127.0.0.1:9477 unless told
            otherwise. Runs with no configuration file. Plugins added to, changed in or removed from the plugins
            folder take effect without a restart. SIGTERM or SIGINT stops it cleanly.
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
        let server = VigilHTTPServer.application(store: daemon.store, clock: daemon.clock, address: configuration.listen,
                                                 logger: logger)
        logger.info("vigil starting", metadata: [
            "http.address": "\(configuration.listen)",
            "collectors": "\(scheduler.names.joined(separator: ","))",
            "version": "\(VigilCommand.version)",
        ])
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [
                .init(service: scheduler),
                .init(service: daemon.plugins),
                .init(service: server),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
        logger.info("vigil stopped")
    }
}
