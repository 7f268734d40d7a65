import Hummingbird
import Logging
import NIOCore
import Foundation
import VigilAllocator
import VigilCore
import VigilRules
import VigilStore

/// The daemon's HTTP face: `/metrics` (Prometheus text 0.0.4) and `/healthz`. The JSON API and the
/// dashboard join this router later.
public enum VigilHTTPServer {
    /// The routes, on their own, for tests and for the application below.
    /// `benchmarks` answers `/api/v1/benchmarks` (this host's `vigil bench export`) when given.
    public static func router(store: MetricStore, clock: any WallClock, rules: RuleService? = nil,
                              benchmarks: (@Sendable () throws -> Data)? = nil, allocator: Allocator? = nil,
                              reports: ReportBuilder? = nil) -> Router<BasicRequestContext> {
        let router = Router()
        if let allocator { AllocatorRoutes.add(to: router, allocator: allocator, clock: clock) }
        ReportRoutes.add(to: router, reports: reports, rules: rules, clock: clock, store: store, allocator: allocator)
        router.get("/metrics") { _, _ -> Response in
            let body = store.exposition(at: clock.now())
            return Response(
                status: .ok,
                headers: [.contentType: PrometheusExposition.contentType],
                body: ResponseBody(byteBuffer: ByteBuffer(string: body))
            )
        }
        router.get("/healthz") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        if let rules {
            // Read-only views for `vigil rules` and `vigil alerts`; the full API comes with the dashboard.
            router.get("/api/v1/rules") { _, _ -> Response in
                let snapshot = rules.snapshot
                return json(RulesReply(rules: snapshot.rules, files: snapshot.files))
            }
            router.get("/api/v1/alerts") { _, _ -> Response in
                json(AlertsReply(alerts: rules.snapshot.alerts))
            }
        }
        if let benchmarks {
            router.get("/api/v1/benchmarks") { _, _ -> Response in
                do {
                    return Response(status: .ok, headers: [.contentType: "application/json"],
                                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: try benchmarks())))
                } catch {
                    return Response(status: .internalServerError, headers: [.contentType: "application/json"],
                                    body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"error":"cannot read the benchmark runs"}"#)))
                }
            }
        }
        return router
    }

    struct RulesReply: Encodable {
        var rules: [RuleStatus]
        var files: [RuleFileStatus]
    }

    struct AlertsReply: Encodable {
        var alerts: [AlertView]
    }

    static func json(_ value: some Encodable) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: .ok, headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A Hummingbird application (a `Service`) listening on `address`.
    public static func application(store: MetricStore, clock: any WallClock, address: ListenAddress, rules: RuleService? = nil,
                                   benchmarks: (@Sendable () throws -> Data)? = nil, allocator: Allocator? = nil,
                                   reports: ReportBuilder? = nil, logger: Logger,
                                   onRunning: @escaping @Sendable () async -> Void = {}) -> some ApplicationProtocol {
        if !address.isLoopback {
            logger.warning("listening beyond loopback: anyone who can reach this address can read the metrics",
                           metadata: ["http.address": "\(address)"])
        }
        return Application(
            router: router(store: store, clock: clock, rules: rules, benchmarks: benchmarks, allocator: allocator, reports: reports),
            configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: "vigil"),
            onServerRunning: { _ in await onRunning() },
            logger: logger
        )
    }
}
