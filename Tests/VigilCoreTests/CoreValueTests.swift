import Foundation
import Testing
import VigilCore

@Suite("core values")
struct CoreValueTests {
    @Test("label sets are sorted, unique and drop empty values")
    func labels() {
        let labels = Labels([Label("b", "2"), Label("a", "1"), Label("b", "3"), Label("empty", "")])
        #expect(labels.pairs == [Label("a", "1"), Label("b", "3")])
        #expect(Labels(name: "up", ["job": "vigil"]).name == "up")
        #expect(Labels(name: "up", ["job": "vigil"]).description == #"up{job="vigil"}"#)
        #expect(labels.removing(["a"]).pairs == [Label("b", "3")])
        #expect(labels.keeping(["a"]).pairs == [Label("a", "1")])
        #expect(labels.setting("a", "9")["a"] == "9")
        #expect(Labels(dictionary: ["x": "1"]) < Labels(dictionary: ["y": "0"]))
    }

    @Test("label values are escaped as the exposition format wants")
    func escaping() {
        #expect(Labels.escape(#"plain"#) == "plain")
        #expect(Labels.escape("a\\b\"c\nd") == #"a\\b\"c\nd"#)
    }

    @Test("metric and label names are checked", arguments: [
        ("node_cpu_seconds_total", true, true), ("_x", true, true), ("a:b", true, false), ("9lives", false, false),
        ("", false, false), ("bad-name", false, false), ("ünïcode", false, false),
    ])
    func names(name: String, metricOK: Bool, labelOK: Bool) {
        #expect(Labels.isValidMetricName(name) == metricOK)
        #expect(Labels.isValidLabelName(name) == labelOK)
    }

    @Test("durations parse as Prometheus writes them", arguments: [
        ("250ms", 250), ("90s", 90_000), ("5m", 300_000), ("1h30m", 5_400_000), ("2d", 172_800_000), ("1w", 604_800_000),
        ("1.5", 1500), ("0s", 0),
    ] as [(String, Int64)])
    func durations(text: String, milliseconds: Int64) {
        #expect(DurationParser.milliseconds(text) == milliseconds)
    }

    @Test("not durations", arguments: ["", "5 minutes", "m", "-1s", "5x", "1h-"])
    func notDurations(text: String) {
        #expect(DurationParser.milliseconds(text) == nil)
    }

    @Test("durations print short")
    func durationFormat() {
        #expect(DurationParser.format(milliseconds: 90_000) == "1m30s")
        #expect(DurationParser.format(milliseconds: 250) == "250ms")
        #expect(DurationParser.format(milliseconds: 3_600_000) == "1h")
    }

    @Test("byte sizes", arguments: [("8MiB", 8 << 20), ("64KiB", 65536), ("512", 512), ("1GB", 1_000_000_000)])
    func sizes(text: String, bytes: Int) {
        #expect(ByteSizeParser.bytes(text) == bytes)
        #expect(ByteSizeParser.bytes("lots") == nil)
    }

    @Test("listen addresses")
    func listen() {
        #expect(ListenAddress(parsing: "127.0.0.1:9477") == ListenAddress(host: "127.0.0.1", port: 9477))
        #expect(ListenAddress(parsing: ":9000") == ListenAddress(host: "127.0.0.1", port: 9000))
        #expect(ListenAddress(parsing: "[::1]:9477")?.host == "::1")
        #expect(ListenAddress(parsing: "[::1]:9477")?.description == "[::1]:9477")
        #expect(ListenAddress(parsing: "0.0.0.0:9477")?.isLoopback == false)
        #expect(ListenAddress(parsing: "nowhere") == nil)
        #expect(ListenAddress(parsing: "host:70000") == nil)
    }

    @Test("the manual clock moves only when told")
    func manualClock() {
        let clock = ManualWallClock(1000)
        #expect(clock.now() == 1000)
        clock.advance(by: 500)
        #expect(clock.now() == 1500)
        #expect(SystemWallClock().now() > 1_700_000_000_000)
    }

    @Test("the staleness marker is a NaN with its own bits")
    func stale() {
        #expect(StaleMarker.value.isNaN)
        #expect(StaleMarker.isStale(StaleMarker.value))
        #expect(!StaleMarker.isStale(.nan))
    }

    @Test("the API token: made once with mode 0600, read back, narrowed when others could read it, refused when malformed")
    func apiToken() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-token-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let token = try APIToken.loadOrCreate(dataDirectory: folder)
        #expect(token.count == 64 && token.allSatisfy(\.isHexDigit))
        let path = APIToken.path(dataDirectory: folder)
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
        #expect(try APIToken.loadOrCreate(dataDirectory: folder) == token, "a second start keeps the token")
        #expect(try APIToken.read(dataDirectory: folder) == token)
        chmod(path, 0o644)
        #expect(try APIToken.loadOrCreate(dataDirectory: folder) == token)
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
        #expect(APIToken.matches(token, token) && !APIToken.matches(token, String(token.dropLast()) + "x") && !APIToken.matches("", token))
        try "short\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: VigilError.self) { try APIToken.read(dataDirectory: folder) }
        #expect { try APIToken.read(dataDirectory: folder + "/elsewhere") } throws: { error in
            "\(error)".contains("does not exist (has `vigil serve` started with this data folder?)")
        }
    }
}

@Suite("liveness")
struct LivenessTests {
    @Test("a part is stalled once it has not beaten for three of its intervals; a forgotten part is not watched")
    func stalls() async throws {
        let liveness = Liveness(minimumAllowance: 0)
        liveness.beat("rules", every: 200)
        liveness.beat("allocator", every: 60_000)
        #expect(liveness.stalled().isEmpty)
        try await Task.sleep(for: .milliseconds(900))
        #expect(liveness.stalled().map(\.part) == ["rules"])
        liveness.beat("rules", every: 200)
        #expect(liveness.stalled().isEmpty)
        liveness.beat("collector:x", every: 1)
        try await Task.sleep(for: .milliseconds(50))
        liveness.forget("collector:x")
        #expect(!liveness.stalled().map(\.part).contains("collector:x"))
    }
}
