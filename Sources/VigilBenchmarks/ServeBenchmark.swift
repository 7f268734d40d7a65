import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `vigil serve` at 1 s collection, scraped every second, beside Debian's node_exporter scraped the
/// same way: CPU (% of one core) and resident memory over the same window.
enum ServeBenchmark {
    struct Target {
        let name: String
        let executable: String
        let arguments: [String]
        /// Scraped once a second when set.
        let metricsURL: URL?
    }

    static func run(seconds: Int, binary: String? = nil) {
        let vigil = binary ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("vigil").path
        print("== serve (\(seconds) s after 10 s of warm-up; \(vigil))")
        var targets = [
            Target(name: "vigil serve, collecting at 1 s (not scraped)", executable: vigil,
                   arguments: ["serve", "--listen", "127.0.0.1:19477"], metricsURL: nil),
            Target(name: "vigil serve, collecting at 1 s, scraped every 1 s", executable: vigil,
                   arguments: ["serve", "--listen", "127.0.0.1:19478"], metricsURL: URL(string: "http://127.0.0.1:19478/metrics")!),
        ]
        let nodeExporter = "/usr/bin/prometheus-node-exporter"
        if FileManager.default.isExecutableFile(atPath: nodeExporter) {
            targets.append(Target(name: "baseline: node_exporter, scraped every 1 s", executable: nodeExporter,
                                  arguments: ["--web.listen-address=127.0.0.1:19100"],
                                  metricsURL: URL(string: "http://127.0.0.1:19100/metrics")!))
        } else {
            print("  (node_exporter not installed: apt-get install prometheus-node-exporter for the baseline)")
        }
        let processes: [Process] = targets.map { target in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: target.executable)
            process.arguments = target.arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            do { try process.run() } catch { fatalError("cannot start \(target.executable): \(error)") }
            return process
        }
        defer { processes.forEach { $0.terminate() } }
        func scrapeAll() {
            for target in targets { if let url = target.metricsURL { _ = try? Data(contentsOf: url) } }
        }
        for _ in 0..<10 { scrapeAll(); Thread.sleep(forTimeInterval: 1) }
        let before = processes.map { cpuSeconds(pid: $0.processIdentifier) }
        let started = Date()
        var peak = [Double](repeating: 0, count: processes.count)
        for _ in 0..<seconds {
            scrapeAll()
            for (i, p) in processes.enumerated() { peak[i] = max(peak[i], residentBytes(pid: p.processIdentifier)) }
            Thread.sleep(forTimeInterval: 1)
        }
        let wall = Date().timeIntervalSince(started)
        for (i, target) in targets.enumerated() {
            let cpu = cpuSeconds(pid: processes[i].processIdentifier) - before[i]
            let rss = residentBytes(pid: processes[i].processIdentifier)
            row(target.name, "\(format(cpu / wall * 100, 3)) % of one core",
                "resident \(format(rss / 1_048_576, 1)) MiB (peak \(format(peak[i] / 1_048_576, 1)) MiB)")
        }
    }

    static func cpuSeconds(pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ((Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)) / ticks
    }

    static func residentBytes(pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return (Double(line.split(separator: " ")[1]) ?? 0) * 1024
        }
        return 0
    }
}
