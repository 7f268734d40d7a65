import Hummingbird
import Logging
import NIOCore
import VigilCore
import VigilStore

/// The daemon's HTTP face: `/metrics` (Prometheus text 0.0.4) and `/healthz`. The JSON API and the
/// dashboard join this router later.
public enum VigilHTTPServer {
    /// The routes, on their own, for tests and for the application below.
    public static func router(store: MetricStore, clock: any WallClock) -> Router<BasicRequestContext> {
        let router = Router()
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
        return router
    }

    /// A Hummingbird application (a `Service`) listening on `address`.
    public static func application(store: MetricStore, clock: any WallClock, address: ListenAddress,
                                   logger: Logger) -> some ApplicationProtocol {
        if !address.isLoopback {
            logger.warning("listening beyond loopback: anyone who can reach this address can read the metrics",
                           metadata: ["http.address": "\(address)"])
        }
        return Application(
            router: router(store: store, clock: clock),
            configuration: ApplicationConfiguration(address: .hostname(address.host, port: address.port), serverName: "vigil"),
            logger: logger
        )
    }
}
