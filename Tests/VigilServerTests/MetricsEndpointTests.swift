import Hummingbird
import HummingbirdTesting
import Logging
import Testing
import VigilCore
import VigilStore
@testable import VigilServer

@Suite("HTTP endpoints")
struct MetricsEndpointTests {
    @Test("/metrics serves the store over a real socket in text format 0.0.4")
    func metrics() async throws {
        let clock = ManualWallClock(10_000)
        let store = MetricStore()
        store.describe("gpu_temperature_celsius", kind: .gauge, help: "GPU temperature.")
        store.append(Labels(name: "gpu_temperature_celsius", ["gpu": "0"]), 9_000, 61)
        store.append(Labels(name: "gpu_temperature_celsius", ["gpu": "1"]), 9_000, StaleMarker.value)
        let app = Application(router: VigilHTTPServer.router(store: store, clock: clock))
        try await app.test(.live) { client in
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/plain; version=0.0.4; charset=utf-8")
                #expect(String(buffer: response.body) == """
                    # HELP gpu_temperature_celsius GPU temperature.
                    # TYPE gpu_temperature_celsius gauge
                    gpu_temperature_celsius{gpu="0"} 61

                    """)
            }
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "ok\n")
            }
            try await client.execute(uri: "/metrics", method: .post) { response in
                #expect(response.status == .methodNotAllowed || response.status == .notFound)
            }
        }
    }
}
