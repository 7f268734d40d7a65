import Dispatch
import Foundation
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A daemon in a folder of its own (rules/, data/, vigil.yml), started and stopped by the test.
final class TestDaemon {
    let root: URL
    let port = E2E.freePort()
    var process: Process?
    /// Added to the daemon's environment (by default it finds no NVIDIA library).
    var environment: [String: String] = ["VIGIL_NVML_LIBRARY": "/nonexistent/libnvidia-ml.so.1"]
    /// The address it listens on; `base` still reaches it on 127.0.0.1 unless `host` says otherwise.
    var listenHost = "127.0.0.1"
    var host = "127.0.0.1"

    init(config: String, rules: [String: String]) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-e2e-daemon-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("rules"), withIntermediateDirectories: true)
        try (config + "\nrules_dir: rules\ndata_dir: data\nplugins_dir: plugins\n")
            .write(to: root.appendingPathComponent("vigil.yml"), atomically: true, encoding: .utf8)
        for (name, text) in rules { try write(name, text) }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: root)
    }

    var configPath: String { root.appendingPathComponent("vigil.yml").path }
    var base: String { "http://\(host):\(port)" }

    /// The API token the daemon made in its data folder.
    func token() throws -> String {
        try String(contentsOf: root.appendingPathComponent("data/api-token"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func write(_ name: String, _ text: String) throws {
        try text.write(to: root.appendingPathComponent("rules/\(name)"), atomically: true, encoding: .utf8)
    }

    func start() async throws {
        let process = Process()
        process.currentDirectoryURL = root
        process.executableURL = try E2E.vigil()
        process.arguments = ["serve", "--listen", "\(listenHost):\(port)", "--config", configPath]
        process.environment = E2E.environment(environment)
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        self.process = process
        var ready = false
        for _ in 0..<150 where !ready {
            ready = await E2E.get(base + "/healthz")?.0 == 200
            if !ready { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ready)
    }

    func stop() {
        guard let process, process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    /// kill -9: no shutdown at all.
    func crash() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Runs `vigil ARGS --url BASE` against this daemon.
    func cli(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await E2E.run(arguments, environment: ["VIGIL_URL": base], directory: root)
    }

    /// Polls `path` until `condition` holds on its JSON (or 15 s pass); returns the last reply.
    func poll(_ path: String, until condition: ([String: Any]) -> Bool) async throws -> [String: Any] {
        var last: [String: Any] = [:]
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            if let (status, _, body) = await E2E.get(base + path), status == 200,
               let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] {
                last = object
                if condition(object) { return object }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return last
    }

    func alert(_ reply: [String: Any], _ rule: String) -> [String: Any]? {
        (reply["alerts"] as? [[String: Any]])?.first { $0["rule"] as? String == rule }
    }

    func summary(_ reply: [String: Any], _ rule: String) -> String? {
        (alert(reply, rule)?["annotations"] as? [String: String])?["summary"]
    }
}

