import Dispatch
import Foundation
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The built `vigil` executable, next to the test bundle.
private func vigilExecutable() throws -> URL {
    let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [bundleDirectory, bundleDirectory.deletingLastPathComponent()] {
        let url = candidate.appendingPathComponent("vigil")
        if FileManager.default.isExecutableFile(atPath: url.path) { return url }
    }
    throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: bundleDirectory.appendingPathComponent("vigil").path])
}

/// A port that was free a moment ago on 127.0.0.1.
private func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

private struct Finished {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `vigil` and waits for it on a dispatch queue, so the wait never holds one of Swift's few
/// cooperative threads (other tests' tasks run there).
private func run(_ arguments: [String], environment: [String: String] = [:], directory: URL? = nil) async throws -> Finished {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try runBlocking(arguments, environment: environment, directory: directory) })
        }
    }
}

/// The environment of a child `vigil`: ours, with `extra` on top.
private func environment(_ extra: [String: String]) -> [String: String] {
    ProcessInfo.processInfo.environment.merging(extra) { _, new in new }
}

/// The fake NVML library the package builds, and its example scenario with 8 GPUs.
private func fakeNVML() throws -> [String: String] {
    let library = try vigilExecutable().deletingLastPathComponent().appendingPathComponent("libVigilFakeNVML.so")
    let scenario = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/VigilFakeNVML/eight-gpus.json")
    return ["VIGIL_NVML_LIBRARY": library.path, "VIGIL_FAKE_NVML_CONFIG": scenario.path]
}

/// A library path that does not exist, for "no NVIDIA driver" (also on a host that has one).
private let noNVML = ["VIGIL_NVML_LIBRARY": "/nonexistent/libnvidia-ml.so.1"]

private func runBlocking(_ arguments: [String], environment extra: [String: String] = [:], directory: URL? = nil) throws -> Finished {
    let process = Process()
    if let directory { process.currentDirectoryURL = directory }
    process.executableURL = try vigilExecutable()
    process.arguments = arguments
    process.environment = environment(extra)
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return Finished(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                    stderr: String(decoding: stderr, as: UTF8.self))
}

/// The helpers, for the other end-to-end suites.
enum E2E {
    static func vigil() throws -> URL { try vigilExecutable() }
    static func freePort() -> Int { vigilTests.freePort() }
    static func environment(_ extra: [String: String]) -> [String: String] { vigilTests.environment(extra) }
    static func get(_ url: String) async -> (Int, String, String)? { await vigilTests.get(url) }
    static func run(_ arguments: [String], environment: [String: String] = [:], directory: URL? = nil) async throws -> (status: Int32, stdout: String, stderr: String) {
        let finished = try await vigilTests.run(arguments, environment: environment, directory: directory)
        return (finished.status, finished.stdout, finished.stderr)
    }
}

private func get(_ url: String) async -> (Int, String, String)? {
    guard let (data, response) = try? await URLSession.shared.data(from: URL(string: url)!),
          let http = response as? HTTPURLResponse else { return nil }
    return (http.statusCode, http.value(forHTTPHeaderField: "Content-Type") ?? "", String(decoding: data, as: UTF8.self))
}

@Suite("vigil, the executable", .serialized)
struct DaemonEndToEndTests {
    @Test("vigil serve answers /healthz and /metrics on loopback and stops cleanly on SIGTERM")
    func serve() async throws {
        let port = freePort()
        let process = Process()
        process.executableURL = try vigilExecutable()
        process.arguments = ["serve", "--listen", "127.0.0.1:\(port)"]
        process.environment = environment(noNVML)
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        var health: (Int, String, String)?
        for _ in 0..<100 {
            health = await get("http://127.0.0.1:\(port)/healthz")
            if health != nil { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(health?.0 == 200)
        // Two collection rounds, so counters have two samples.
        try await Task.sleep(for: .milliseconds(2200))
        let metrics = try #require(await get("http://127.0.0.1:\(port)/metrics"))
        #expect(metrics.0 == 200)
        #expect(metrics.1 == "text/plain; version=0.0.4; charset=utf-8")
        for family in ["node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_load1", "node_network_receive_bytes_total",
                       "node_filesystem_avail_bytes", "node_disk_read_bytes_total", "node_tcp_connection_states",
                       "vigil_collector_duration_seconds", "vigil_collector_errors_total", "vigil_store_series",
                       "vigil_store_samples_appended_total", "vigil_store_memory_bytes"] {
            #expect(metrics.2.contains("\n# TYPE \(family) ") || metrics.2.hasPrefix("# HELP \(family) "), "missing \(family)")
        }
        #expect(metrics.2.hasSuffix("\n"))
        #expect(metrics.2.contains("# TYPE node_cpu_seconds_total counter"))
        #expect(metrics.2.contains("vigil_collector_errors_total{collector=\"procfs\"} 0"))
        let missing = await get("http://127.0.0.1:\(port)/nothing")
        #expect(missing?.0 == 404)

        process.interrupt()   // SIGINT; SIGTERM behaves the same
        let deadline = Date().addingTimeInterval(15)
        while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!process.isRunning, "the daemon stops within 15 s")
        #expect(process.terminationStatus == 0)
        let log = String(decoding: err.fileHandleForReading.availableData, as: UTF8.self)
        #expect(log.contains("vigil stopped"), "\(log)")
        #expect(log.components(separatedBy: "no NVIDIA driver found").count == 2, "said once: \(log)")
        #expect(!metrics.2.contains("gpu_up"))
    }

    @Test("with the fake NVML library, vigil serve exports its 8 GPUs and vigil gpus lists them")
    func fakeGPUs() async throws {
        let fake = try fakeNVML()
        let port = freePort()
        let process = Process()
        process.executableURL = try vigilExecutable()
        process.arguments = ["serve", "--listen", "127.0.0.1:\(port)"]
        process.environment = environment(fake)
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        var metrics = ""
        for _ in 0..<100 {
            // A scrape may land while a collection round is being written: wait for a whole one.
            if let (status, _, body) = await get("http://127.0.0.1:\(port)/metrics"), status == 200, body.contains("gpu_process_memory_bytes{"),
               body.split(separator: "\n").filter({ $0.hasPrefix("gpu_up{") }).count == 8, body.contains("gpu_mig_memory_total_bytes{") {
                metrics = body
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let up = metrics.split(separator: "\n").filter { $0.hasPrefix("gpu_up{") && $0.hasSuffix(" 1") }
        #expect(up.count == 8, "\(metrics.prefix(2000))")
        #expect(metrics.contains("# TYPE gpu_energy_joules_total counter"))
        #expect(metrics.contains("gpu_mig_memory_total_bytes{"))
        #expect(metrics.contains("gpu_temperature_celsius{gpu=\"7\",model=\"NVIDIA GeForce RTX 4090\",pci_bus_id=\"00000000:E1:00.0\",uuid=\"GPU-e2b8d6c1-7a45-4f90-8c3d-000000000007\"} 36"))
        #expect(metrics.contains("gpu_nvml_up 1"))
        process.interrupt()

        let table = try await run(["gpus"], environment: fake)
        #expect(table.status == 0, "\(table.stderr)")
        let rows = table.stdout.split(separator: "\n").filter { $0.contains("NVIDIA ") && Int($0.split(separator: " ").first ?? "") != nil }
        #expect(rows.count == 8, "\(table.stdout)")
        #expect(table.stdout.contains("Driver 550.54.15"))

        let json = try await run(["gpus", "--json"], environment: fake)
        #expect(json.status == 0)
        let decoded = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let gpus = try #require(decoded["gpus"] as? [[String: Any]])
        #expect(gpus.count == 8)
        #expect(gpus.first?["uuid"] as? String == "GPU-8f3c2a10-6b1e-4c2d-9a7f-000000000000")
        #expect(gpus.first?["memory_total_bytes"] as? Int == 80 << 30)
        #expect(gpus.first?["utilization_gpu_percent"] as? Int == 92)
        #expect((gpus.first?["clocks_megahertz"] as? [String: Any])?["sm"] as? Int == 1980)
        #expect(decoded["driver_version"] as? String == "550.54.15")

        let none = try await run(["gpus"], environment: noNVML)
        #expect(none.status == 1)
        #expect(none.stderr.contains("no NVIDIA driver found"), "\(none.stderr)")
    }

    @Test("a plugin added to the plugins folder while the daemon runs appears on /metrics without a restart")
    func pluginAddedWhileRunning() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-e2e-plugins-\(UUID().uuidString)")
        let plugins = root.appendingPathComponent("plugins")
        try FileManager.default.createDirectory(at: plugins, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let config = root.appendingPathComponent("vigil.yml")
        // Relative, as in the default configuration: plugins still run in their own folders.
        try "plugins_dir: plugins\n".write(to: config, atomically: true, encoding: .utf8)
        let port = freePort()
        let process = Process()
        process.currentDirectoryURL = root
        process.executableURL = try vigilExecutable()
        process.arguments = ["serve", "--listen", "127.0.0.1:\(port)", "--config", config.path]
        process.environment = environment(noNVML)
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        var ready = false
        for _ in 0..<100 where !ready {
            ready = await get("http://127.0.0.1:\(port)/healthz")?.0 == 200
            if !ready { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ready)
        #expect(await get("http://127.0.0.1:\(port)/metrics")?.2.contains("lab_humidity_ratio") == false)

        // Written the way an operator's tool would: files first, the manifest last.
        let folder = plugins.appendingPathComponent("lab")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let script = folder.appendingPathComponent("humidity.sh")
        try "#!/bin/sh\necho '# TYPE lab_humidity_ratio gauge'\necho 'lab_humidity_ratio{room=\"b12\"} 0.43'\n".write(to: script, atomically: true, encoding: .utf8)
        chmod(script.path, 0o755)
        try "kind: exec\ncommand: ./humidity.sh\ninterval: 1s\n".write(to: folder.appendingPathComponent("plugin.yml"), atomically: true, encoding: .utf8)
        var metrics = ""
        for _ in 0..<100 {
            metrics = await get("http://127.0.0.1:\(port)/metrics")?.2 ?? ""
            if metrics.contains("lab_humidity_ratio{") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(metrics.contains("# TYPE lab_humidity_ratio gauge\nlab_humidity_ratio{room=\"b12\"} 0.43\n"), "\(metrics.suffix(500))")
        #expect(metrics.contains("vigil_collector_success{collector=\"lab\"} 1"))

        let listed = try await run(["plugins", "--config", config.path], directory: root)
        #expect(listed.status == 0, "\(listed.stdout)\(listed.stderr)")
        #expect(listed.stdout.contains("lab") && listed.stdout.contains("ok: 1 series"), "\(listed.stdout)")

        // A disabled plugin is listed as such and is not a failure; a broken one is, with its line.
        let off = plugins.appendingPathComponent("off")
        try FileManager.default.createDirectory(at: off, withIntermediateDirectories: true)
        try "kind: textfile\nenabled: false\n".write(to: off.appendingPathComponent("plugin.yml"), atomically: true, encoding: .utf8)
        let withDisabled = try await run(["plugins", "--config", config.path], directory: root)
        #expect(withDisabled.status == 0)
        #expect(withDisabled.stdout.contains("disabled (enabled: false)"), "\(withDisabled.stdout)")
        try "kind: textfile\nlimits: { series: many }\n".write(to: off.appendingPathComponent("plugin.yml"), atomically: true, encoding: .utf8)
        let broken = try await run(["plugins", "--config", config.path], directory: root)
        #expect(broken.status == 1)
        #expect(broken.stdout.contains("off/plugin.yml:2:19: limits.series must be a whole number"), "\(broken.stdout)")
        process.interrupt()
    }

    @Test("vigil eval prints the value; an error goes to stderr with file:line and exit status 1")
    func eval() async throws {
        let ok = try await run(["eval", "--rounds", "1", "return vigil.query.scalar(vigil.query.last('node_load1')) >= 0, 6 * 7"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout == "true\n42\n")

        let script = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-eval-\(UUID().uuidString).lua")
        try "local x = 1\nlocal y = nil + x\nreturn y\n".write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        let failed = try await run(["eval", "--rounds", "0", "--file", script.path])
        #expect(failed.status == 1)
        #expect(failed.stdout.isEmpty)
        #expect(failed.stderr.contains("\(script.path):2: attempt to perform arithmetic on a nil value"), "\(failed.stderr)")
        #expect(failed.stderr.contains("stack traceback:"))

        let syntax = try await run(["eval", "--rounds", "0", "return )"])
        #expect(syntax.status == 1)
        #expect(syntax.stderr.contains("eval:1: unexpected symbol near ')'"), "\(syntax.stderr)")

        let limited = try await run(["eval", "--rounds", "0", "while true do end"])
        #expect(limited.status == 1)
        #expect(limited.stderr.contains("instruction limit exceeded"))

        let json = try await run(["eval", "--rounds", "0", "--json", "return {a = 1, b = {2, 3}}"])
        let decoded = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(decoded?["a"] as? Int == 1)
        #expect(decoded?["b"] as? [Int] == [2, 3])
    }

    @Test("vigil collect --once prints Prometheus text or JSON")
    func collect() async throws {
        let text = try await run(["collect", "--once"])
        #expect(text.status == 0)
        #expect(text.stdout.contains("# TYPE node_load1 gauge\nnode_load1 "))
        let json = try await run(["collect", "--once", "--format", "json"])
        #expect(json.status == 0)
        let elements = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        #expect(elements.contains { $0["name"] as? String == "node_cpu_seconds_total" && $0["type"] as? String == "counter" })
    }

    @Test("a bad configuration file is refused with file, line and key")
    func badConfiguration() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-\(UUID().uuidString).yml")
        try "listen: 127.0.0.1:9477\nlua:\n  memroy: 8MiB\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try await run(["serve", "--config", file.path])
        #expect(result.status != 0)
        #expect(result.stderr.contains("\(file.path):3:11: unknown key 'memroy' in lua"), "\(result.stderr)")
    }

    @Test("--version and --help")
    func help() async throws {
        let version = try await run(["--version"])
        #expect(version.stdout == "0.1.0\n")
        for command in ["serve", "collect", "eval", "gpus", "plugins"] {
            let help = try await run([command, "--help"])
            #expect(help.status == 0)
            #expect(help.stdout.contains("USAGE: vigil \(command)"))
        }
    }
}
