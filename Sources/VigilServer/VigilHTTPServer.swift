import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Foundation
import VigilAllocator
import VigilCore
import VigilRules
import VigilState
import VigilStore

/// The daemon's HTTP face: `/metrics` (Prometheus text 0.0.4), `/healthz`, the JSON API under `/api/v1`
/// (documented at `/api/v1/openapi.json`) and the dashboard.
public enum VigilHTTPServer {
    /// What the routes read and change. Parts left nil leave their routes out.
    public struct Services: Sendable {
        public var store: MetricStore
        public var clock: any WallClock
        public var rules: RuleService?
        /// Answers `/api/v1/benchmarks` (this host's `vigil bench export`).
        public var benchmarks: (@Sendable () throws -> Data)?
        public var allocator: Allocator?
        public var reports: ReportBuilder?
        /// Silences and alert history.
        public var database: StateDatabase?
        /// The bearer token mutations (and reads from beyond loopback) need; nil turns the check off (tests of other parts).
        public var token: String?
        public var dashboard = Dashboard.Options()
        /// Names the `Host` header may carry besides loopback names and IP addresses (see `HostCheck`).
        public var allowedHosts: Set<String> = []
        public var connections = ConnectionLimits()
        /// When set, /healthz answers 503 naming the parts that stopped making progress.
        public var liveness: Liveness?
        public var version = "0"

        public init(store: MetricStore, clock: any WallClock, rules: RuleService? = nil, benchmarks: (@Sendable () throws -> Data)? = nil,
                    allocator: Allocator? = nil, reports: ReportBuilder? = nil, database: StateDatabase? = nil, token: String? = nil) {
            self.store = store
            self.clock = clock
            self.rules = rules
            self.benchmarks = benchmarks
            self.allocator = allocator
            self.reports = reports
            self.database = database
            self.token = token
        }
    }

    /// The routes, on their own, for tests and for the application below.
    public static func router(_ services: Services) -> Router<VigilRequestContext> {
        routerAndTable(services).router
    }

    public static func router(store: MetricStore, clock: any WallClock) -> Router<VigilRequestContext> {
        router(Services(store: store, clock: clock))
    }

    static func routerAndTable(_ services: Services) -> (router: Router<VigilRequestContext>, table: RouteTable) {
        let router = Router(context: VigilRequestContext.self)
        let table = RouteTable()
        router.add(middleware: HostCheck(allowed: services.allowedHosts))
        router.add(middleware: APIGate(table: table, token: services.token))
        let api = APIBuilder(router: router, table: table)
        let (store, clock) = (services.store, services.clock)
        api.get("/metrics", "Every series in Prometheus text format 0.0.4", tag: "metrics", returns: "the exposition",
                mediaType: PrometheusExposition.contentType, api: false) { _, _ in
            Response(status: .ok, headers: [.contentType: PrometheusExposition.contentType],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: store.exposition(at: clock.now()))))
        }
        let liveness = services.liveness
        api.get("/healthz", "ok while the collectors, the rule engine and the allocator make progress; 503 naming those that stopped",
                tag: "monitor", returns: "ok", mediaType: "text/plain", api: false) { _, _ in
            let stalled = liveness?.stalled() ?? []
            guard stalled.isEmpty else {
                let text = stalled.map { "\($0.part) has made no progress for \(Int($0.silentSeconds)) s" }.joined(separator: "\n")
                return Response(status: .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: ResponseBody(byteBuffer: ByteBuffer(string: "stalled\n" + text + "\n")))
            }
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        api.get("/api/v1/openapi.json", "This document", tag: "meta", returns: "OpenAPI 3.1") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"],
                     body: ResponseBody(byteBuffer: ByteBuffer(bytes: OpenAPIDocument.make(routes: table.all, version: services.version))))
        }
        MonitorRoutes.add(to: api, store: store, clock: clock, rules: services.rules, allocator: services.allocator,
                          database: services.database, benchmarks: services.benchmarks)
        if let allocator = services.allocator { AllocatorRoutes.add(to: api, allocator: allocator, clock: clock) }
        ReportRoutes.add(to: api, reports: services.reports, rules: services.rules, clock: clock, store: store, allocator: services.allocator)
        Dashboard.add(to: api, options: services.dashboard)
        return (router, table)
    }

    /// A Hummingbird application (a `Service`) listening on `address`.
    public static func application(_ services: Services, address: ListenAddress, logger: Logger,
                                   onRunning: @escaping @Sendable () async -> Void = {}) -> some ApplicationProtocol {
        if !address.isLoopback {
            logger.warning("""
                listening beyond loopback: anyone who can reach this address can read /metrics and the dashboard's pages; \
                the API answers them only with the token
                """, metadata: ["http.address": "\(address)"])
        }
        let limits = services.connections
        let peers = PeerCounts()
        return Application(
            router: router(services),
            server: .http1(configuration: .init(additionalChannelHandlers: [ConnectionGuard(limits: limits, peers: peers)],
                                                 idleTimeout: .milliseconds(limits.idleTimeoutMilliseconds))),
            configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: "vigil",
                                                    availableConnectionsDelegate: MaximumAvailableConnections(limits.total, logger: logger)),
            onServerRunning: { _ in await onRunning() },
            logger: logger
        )
    }
}
