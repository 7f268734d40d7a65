import Foundation
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The JSON API of a running daemon (fake NVML, 8 GPUs), route by route: every route in the OpenAPI
/// document and answering, the token, and mistakes answered with JSON and the right status.
@Suite("the HTTP API", .serialized)
struct APIEndToEndTests {
    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: String
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]) ?? [:] }
    }

    static func request(_ daemon: TestDaemon, _ method: String, _ path: String, body: String? = nil, type: String? = "application/json",
                        token: String? = nil) async throws -> Reply {
        var request = URLRequest(url: URL(string: daemon.base + path)!)
        request.httpMethod = method
        if let body {
            request.httpBody = Data(body.utf8)
            request.setValue(type, forHTTPHeaderField: "Content-Type")
        }
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        var headers: [String: String] = [:]
        for (key, value) in http.allHeaderFields { headers[String(describing: key).lowercased()] = String(describing: value) }
        return Reply(status: http.statusCode, headers: headers, body: String(decoding: data, as: UTF8.self))
    }

    /// Every route of the API, as the OpenAPI document must list it.
    static let routes: Set<String> = [
        "GET /api/v1/openapi.json",
        "GET /api/v1/query", "GET /api/v1/query_range", "GET /api/v1/metric_names",
        "GET /api/v1/gpus", "GET /api/v1/top", "GET /api/v1/benchmarks",
        "GET /api/v1/rules", "GET /api/v1/alerts", "GET /api/v1/alerts/history",
        "GET /api/v1/silences", "POST /api/v1/silences", "DELETE /api/v1/silences/{id}",
        "POST /api/v1/tasks", "GET /api/v1/tasks", "GET /api/v1/tasks/{id}", "GET /api/v1/tasks/{id}/logs",
        "POST /api/v1/tasks/{id}/pause", "POST /api/v1/tasks/{id}/resume", "POST /api/v1/tasks/{id}/cancel",
        "POST /api/v1/tasks/{id}/priority", "GET /api/v1/queue", "GET /api/v1/costs", "POST /api/v1/drain", "POST /api/v1/undrain",
        "GET /api/v1/recommendations", "GET /api/v1/reports/status", "GET /api/v1/reports/cost", "GET /api/v1/reports/tasks/{id}",
    ]

    static let rules = """
        local vigil = require "vigil"
        vigil.alert "ApiHot" {
          every = "1s",
          query = "gpu_temperature_celsius",
          fire = function(s) return s.value > 60 end,
          severity = "warning",
          annotations = { summary = "GPU {{gpu}} at {{value}} °C" },
        }
        """

    @Test("every route is in the OpenAPI document and answers; changes need the token; mistakes get JSON errors with 400, 401, 404, 405, 413 or 415")
    func everyRoute() async throws {
        let daemon = try TestDaemon(config: "costs:\n  currency: EUR\n  gpu_hour: { default: 4 }\n", rules: ["api.lua": Self.rules])
        let library = try E2E.vigil().deletingLastPathComponent().appendingPathComponent("libVigilFakeNVML.so").path
        daemon.environment = ["VIGIL_NVML_LIBRARY": library, "VIGIL_FAKE_NVML_CONFIG": try AllocatorEndToEndTests.scenario(in: daemon.root)]
        try await daemon.start()
        let token = try daemon.token()
        #expect(token.count == 64)
        let mode = try FileManager.default.attributesOfItem(atPath: daemon.root.appendingPathComponent("data/api-token").path)[.posixPermissions] as? Int
        #expect(mode == 0o600)

        // The document lists exactly the routes above, each with its method.
        let document = try await Self.request(daemon, "GET", "/api/v1/openapi.json").json
        #expect(document["openapi"] as? String == "3.1.0")
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        let documented = Set(paths.flatMap { path, operations in operations.keys.map { "\($0.uppercased()) \(path)" } })
        #expect(documented == Self.routes, "missing: \(Self.routes.subtracting(documented)); extra: \(documented.subtracting(Self.routes))")
        for (path, operations) in paths {
            for (method, operation) in operations {
                let security = (operation as? [String: Any])?["security"] as? [[String: Any]]
                #expect(method == "get" ? security?.contains(where: \.isEmpty) == true : security?.contains(where: \.isEmpty) == false,
                        "\(method) \(path): reads are open, changes need the bearer token")
            }
        }

        // Metric queries read the fake library's figures: GPU 1 at 61 °C, 8 GPUs up.
        var reply = try await daemon.poll("/api/v1/query?query=gpu_up&aggregate=count") { ($0["result"] as? [[String: Any]])?.first?["value"] as? Double == 8 }
        reply = try await Self.request(daemon, "GET", "/api/v1/query?query=gpu_temperature_celsius%7Bgpu%3D%221%22%7D").json
        let element = try #require((reply["result"] as? [[String: Any]])?.first)
        #expect(element["value"] as? Double == 61 && (element["labels"] as? [String: String])?["model"] == "NVIDIA H100 80GB HBM3", "\(reply)")
        try await Task.sleep(for: .seconds(2))
        let end = Date().timeIntervalSince1970
        reply = try await Self.request(daemon, "GET", "/api/v1/query_range?query=gpu_up&aggregate=sum&start=\(end - 2)&end=\(end)&step=1s").json
        let sums = ((reply["result"] as? [[String: Any]])?.first?["samples"] as? [[Double]])?.map { $0[1] }
        #expect(sums == [8, 8, 8], "\(reply)")
        // A rate needs two samples in its window: poll until the collectors have taken them.
        reply = try await daemon.poll("/api/v1/query?query=gpu_energy_joules_total&function=rate&window=30s&aggregate=topk&k=2") {
            ($0["result"] as? [Any])?.count == 2
        }
        #expect((reply["result"] as? [Any])?.count == 2, "\(reply)")
        #expect((try await Self.request(daemon, "GET", "/api/v1/metric_names").json["names"] as? [String])?.contains("gpu_up") == true)
        reply = try await Self.request(daemon, "GET", "/api/v1/gpus").json
        #expect((reply["gpus"] as? [[String: Any]])?.count == 8)

        // Tasks: submit, show, logs, pause, resume, priority, cancel.
        let spec = #"{"command":["sh","-c","echo started; sleep 30"],"directory":"/tmp","owner":"ana","gpus":1,"name":"api-task"}"#
        let refused = try await Self.request(daemon, "POST", "/api/v1/tasks", body: spec)
        #expect(refused.status == 401 && refused.headers["www-authenticate"] == #"Bearer realm="vigil""#
                && (refused.json["error"] as? String)?.contains("this needs the API token") == true, "\(refused)")
        let wrong = try await Self.request(daemon, "POST", "/api/v1/tasks", body: spec, token: String(token.reversed()))
        #expect(wrong.status == 401 && (wrong.json["error"] as? String)?.contains("does not match") == true)
        let submitted = try await Self.request(daemon, "POST", "/api/v1/tasks", body: spec, token: token)
        #expect(submitted.status == 201, "\(submitted)")
        let id = try #require(submitted.json["id"] as? Int)
        _ = try await daemon.poll("/api/v1/tasks/\(id)") { ($0["task"] as? [String: Any])?["state"] as? String == "running" }
        var logs = ""
        for _ in 0..<50 where !logs.contains("started") {
            logs = try await Self.request(daemon, "GET", "/api/v1/tasks/\(id)/logs").body
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(logs == "started\n")
        for (action, state) in [("pause", "paused"), ("resume", "running")] {
            #expect(try await Self.request(daemon, "POST", "/api/v1/tasks/\(id)/\(action)").status == 401)
            let changed = try await Self.request(daemon, "POST", "/api/v1/tasks/\(id)/\(action)", token: token)
            #expect(changed.status == 200 && (changed.json["task"] as? [String: Any])?["state"] as? String == state, "\(action): \(changed)")
        }
        let priority = try await Self.request(daemon, "POST", "/api/v1/tasks/\(id)/priority", body: #"{"priority":"urgent"}"#, token: token)
        #expect(priority.status == 200 && ((priority.json["task"] as? [String: Any])?["spec"] as? [String: Any])?["priority"] as? Int == 100, "\(priority)")
        #expect((try await Self.request(daemon, "GET", "/api/v1/tasks?state=running").json["tasks"] as? [Any])?.count == 1)
        #expect(try await Self.request(daemon, "GET", "/api/v1/queue").json["active"] != nil)
        #expect(try await Self.request(daemon, "GET", "/api/v1/reports/tasks/\(id)").status == 200)
        let cancelled = try await Self.request(daemon, "POST", "/api/v1/tasks/\(id)/cancel", token: token)
        #expect(cancelled.status == 200)
        _ = try await daemon.poll("/api/v1/tasks/\(id)") { ($0["task"] as? [String: Any])?["state"] as? String == "cancelled" }
        for (path, drained) in [("/api/v1/drain", true), ("/api/v1/undrain", false)] {
            #expect(try await Self.request(daemon, "POST", path).status == 401)
            #expect(try await Self.request(daemon, "POST", path, token: token).json["drained"] as? Bool == drained)
        }

        // Alerts and silences: the fake library's GPU 1 runs at 61 °C.
        func gpu1(_ reply: [String: Any]) -> [String: Any]? {
            (reply["alerts"] as? [[String: Any]])?.first { ($0["labels"] as? [String: String])?["gpu"] == "1" }
        }
        reply = try await daemon.poll("/api/v1/alerts") { gpu1($0)?["state"] as? String == "firing" }
        #expect(gpu1(reply)?["state"] as? String == "firing", "\(reply)")
        let silence = #"{"matchers":"alertname=ApiHot,gpu=\"1\"","duration":"1h","comment":"fan swap","created_by":"test"}"#
        #expect(try await Self.request(daemon, "POST", "/api/v1/silences", body: silence).status == 401)
        let created = try await Self.request(daemon, "POST", "/api/v1/silences", body: silence, token: token)
        #expect(created.status == 201 && created.json["state"] as? String == "active", "\(created)")
        let silenceID = try #require(created.json["id"] as? String)
        reply = try await daemon.poll("/api/v1/alerts") { (gpu1($0)?["silencedBy"] as? [String])?.isEmpty == false }
        #expect((gpu1(reply)?["silencedBy"] as? [String]) == [silenceID])
        #expect(((try await Self.request(daemon, "GET", "/api/v1/silences").json["silences"] as? [[String: Any]])?.first?["comment"] as? String) == "fan swap")
        #expect(try await Self.request(daemon, "DELETE", "/api/v1/silences/\(silenceID.prefix(8))").status == 401)
        let expired = try await Self.request(daemon, "DELETE", "/api/v1/silences/\(silenceID.prefix(8))", token: token)
        #expect(expired.status == 200 && expired.json["state"] as? String == "expired", "\(expired)")
        #expect((try await Self.request(daemon, "GET", "/api/v1/silences").json["silences"] as? [Any])?.isEmpty == true)
        #expect((try await Self.request(daemon, "GET", "/api/v1/silences?all=true").json["silences"] as? [Any])?.count == 1)
        #expect(((try await Self.request(daemon, "GET", "/api/v1/alerts/history?rule=ApiHot").json["history"] as? [[String: Any]])?
            .contains { $0["toState"] as? String == "firing" }) == true)

        // The rest of the reads answer 200 with JSON.
        for path in ["/api/v1/top", "/api/v1/benchmarks", "/api/v1/rules", "/api/v1/costs?since=1d", "/api/v1/recommendations?expired=1h",
                     "/api/v1/reports/status", "/api/v1/reports/cost?by=gpu"] {
            let read = try await Self.request(daemon, "GET", path)
            #expect(read.status == 200 && read.headers["content-type"] == "application/json" && !read.json.isEmpty, "\(path): \(read)")
        }

        // Mistakes.
        func expectError(_ reply: Reply, _ status: Int, _ words: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(reply.status == status && reply.headers["content-type"] == "application/json"
                    && (reply.json["error"] as? String)?.contains(words) == true, "\(reply)", sourceLocation: sourceLocation)
        }
        expectError(try await Self.request(daemon, "GET", "/api/v1/nothing"), 404, "nothing is at /api/v1/nothing")
        let notAllowed = try await Self.request(daemon, "DELETE", "/api/v1/tasks", token: token)
        expectError(notAllowed, 405, "answers GET, POST, not DELETE")
        #expect(notAllowed.headers["allow"] == "GET, POST")
        expectError(try await Self.request(daemon, "PUT", "/api/v1/silences/abc", body: "{}", token: token), 405, "answers DELETE")
        expectError(try await Self.request(daemon, "GET", "/api/v1/tasks/999"), 404, "no task 999")
        expectError(try await Self.request(daemon, "POST", "/api/v1/tasks", body: "{not json", token: token), 400, "not JSON")
        expectError(try await Self.request(daemon, "POST", "/api/v1/tasks", body: "true", type: "text/plain", token: token), 415, "send JSON")
        expectError(try await Self.request(daemon, "POST", "/api/v1/tasks", body: "{}", type: nil, token: token), 415, "Content-Type")
        expectError(try await Self.request(daemon, "POST", "/api/v1/silences", body: String(repeating: " ", count: 2 << 20), token: token), 413, "over")
        expectError(try await Self.request(daemon, "POST", "/api/v1/silences", body: #"{"duration":"1h"}"#, token: token), 400, "matchers is missing")
        expectError(try await Self.request(daemon, "POST", "/api/v1/silences", body: #"{"matchers":"gpu=~\"(\""}"#, token: token), 400, "matchers")
        expectError(try await Self.request(daemon, "POST", "/api/v1/silences", body: #"{"matchers":"a=b","duration":"soon"}"#, token: token), 400,
                    "duration must be a duration")
        expectError(try await Self.request(daemon, "DELETE", "/api/v1/silences/ffffffff", token: token), 404, "no silence")
        expectError(try await Self.request(daemon, "POST", "/api/v1/tasks/\(id)/priority", body: #"{"priority":"asap"}"#, token: token), 400, "priority")
        expectError(try await Self.request(daemon, "GET", "/api/v1/query"), 400, "query is missing")
        expectError(try await Self.request(daemon, "GET", "/api/v1/query?query=gpu_up%7B"), 400, "query:")
        expectError(try await Self.request(daemon, "GET", "/api/v1/query?query=gpu_up&function=median"), 400, "unknown function median")
        expectError(try await Self.request(daemon, "GET", "/api/v1/query?query=gpu_up&aggregate=topk"), 400, "topk needs k")
        expectError(try await Self.request(daemon, "GET", "/api/v1/query_range?query=gpu_up"), 400, "say where the range starts")
        expectError(try await Self.request(daemon, "GET", "/api/v1/query_range?query=gpu_up&since=1d&step=1s"), 400, "over 11,000 points")
        expectError(try await Self.request(daemon, "GET", "/api/v1/alerts/history?limit=0"), 400, "limit must be")
        expectError(try await Self.request(daemon, "GET", "/api/v1/costs?since=forever"), 400, "since must be a duration")
        expectError(try await Self.request(daemon, "GET", "/api/v1/reports/cost?by=planet"), 400, "by must be one of")

        // The CLI reads the token from the data folder; without it, a change says what to do.
        #expect(try await daemon.cli(["drain"]).status == 0)
        #expect(try await daemon.cli(["undrain"]).status == 0)
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-no-token-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        let elsewhere = try await E2E.run(["drain"], environment: ["VIGIL_URL": daemon.base], directory: empty)
        #expect(elsewhere.status == 1 && elsewhere.stderr.contains("cannot read the API token") && elsewhere.stderr.contains("api-token"),
                "\(elsewhere.stderr)")
        let dashboard = try await daemon.cli(["dashboard"])
        #expect(dashboard.stdout == "\(daemon.base)/#token=\(token)\n")
    }

    /// The first IPv4 address of this machine that is not loopback, if it has one.
    static func outsideAddress() -> String? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return nil }
        defer { freeifaddrs(list) }
        for entry in sequence(first: first, next: { $0.pointee.ifa_next }) {
            guard let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            guard getnameinfo(address, socklen_t(MemoryLayout<sockaddr_in>.size), &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            let text = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !text.hasPrefix("127.") { return text }
        }
        return nil
    }

    @Test("bound beyond loopback, API reads need the token too; /metrics, /healthz and the dashboard's pages stay open", .enabled(if: outsideAddress() != nil))
    func readsBeyondLoopback() async throws {
        let daemon = try TestDaemon(config: "", rules: [:])
        daemon.listenHost = "0.0.0.0"
        daemon.host = try #require(Self.outsideAddress())
        try await daemon.start()
        let token = try daemon.token()
        let open = try await Self.request(daemon, "GET", "/api/v1/rules")
        #expect(open.status == 401 && (open.json["error"] as? String)?.contains("reads from beyond this host need") == true, "\(open)")
        #expect(try await Self.request(daemon, "GET", "/api/v1/rules", token: token).status == 200)
        for path in ["/metrics", "/healthz", "/", "/tasks", "/assets/vigil.js"] {
            #expect(try await Self.request(daemon, "GET", path).status == 200, "\(path)")
        }
        daemon.host = "127.0.0.1"
        #expect(try await Self.request(daemon, "GET", "/api/v1/rules").status == 200, "from loopback, reads are open")
    }

    @Test("the dashboard's pages, script, style sheet and Chart.js are served; without Chart.js the page is told what to install")
    func dashboardFiles() async throws {
        let daemon = try TestDaemon(config: "", rules: [:])
        try await daemon.start()
        for (path, title) in [("/", "Overview"), ("/tasks", "Tasks"), ("/alerts", "Alerts"), ("/recommendations", "Recommendations"),
                              ("/benchmarks", "Benchmarks"), ("/rules", "Rules")] {
            let page = try await Self.request(daemon, "GET", path)
            #expect(page.status == 200 && page.headers["content-type"] == "text/html; charset=utf-8", "\(path)")
            #expect(page.body.contains("<title>\(title) · Vigil</title>") && page.body.contains(#"<script src="/vendor/chart.js"></script>"#))
        }
        let script = try await Self.request(daemon, "GET", "/assets/vigil.js")
        #expect(script.status == 200 && script.body.contains("apt-get install libjs-chart.js"))
        #expect(try await Self.request(daemon, "GET", "/assets/vigil.css").headers["content-type"] == "text/css; charset=utf-8")
        let chart = try await Self.request(daemon, "GET", "/vendor/chart.js")
        if FileManager.default.fileExists(atPath: "/usr/share/javascript/chart.js/chart.min.js") {
            #expect(chart.status == 200 && chart.body.contains("Chart.js v3"))
        } else {
            #expect(chart.status == 404 && chart.body.contains("apt-get install libjs-chart.js"))
        }
    }
}
