import Foundation
import Testing

@Suite("vigil bench, the executable", .serialized)
struct BenchEndToEndTests {
    @Test("a quick network run is kept; history, export, compare with the export and the daemon's /api/v1/benchmarks")
    func benchCommands() async throws {
        let daemon = try TestDaemon(config: "costs: { currency: EUR, cpu_core_hour: 0.05 }", rules: [:])
        let root = daemon.root
        let config = daemon.configPath

        let json = try await E2E.run(["bench", "network", "gpu", "--quick", "--json", "--config", config], directory: root)
        #expect(json.status == 0, "\(json.stderr)")
        let run = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let results = try #require(run["results"] as? [[String: Any]])
        let names = results.compactMap { $0["name"] as? String }
        #expect(names.contains("network.loopback_throughput") && names.contains("network.loopback_rtt"))
        let gpu = try #require(results.first { $0["name"] as? String == "gpu" })
        #expect((gpu["skipped"] as? String)?.hasPrefix("no GPU") == true, "without a driver the gpu suite is skipped with a reason")
        #expect((results.first?["costUnit"] as? String)?.hasPrefix("EUR") == true)

        let table = try await E2E.run(["bench", "network", "--quick", "--config", config], directory: root)
        #expect(table.status == 0)
        #expect(table.stdout.contains("network.loopback_rtt") && table.stdout.contains("Scores: 1000 ="), "\(table.stdout)")

        let history = try await E2E.run(["bench", "history", "--quick", "--config", config], directory: root)
        #expect(history.stdout.contains("network.loopback_throughput") && history.stdout.contains("Gbit/s"), "\(history.stdout)")

        let exportPath = root.appendingPathComponent("export.json").path
        let export = try await E2E.run(["bench", "export", "-o", exportPath, "--config", config], directory: root)
        #expect(export.status == 0, "\(export.stderr)")
        let compared = try await E2E.run(["bench", "compare", "--quick", "--with", exportPath, "--config", config], directory: root)
        #expect(compared.status == 0, "\(compared.stderr)")
        #expect(compared.stdout.contains("peer: ") && compared.stdout.contains("Here ÷ peer") && compared.stdout.contains("1.00×"),
                "\(compared.stdout)")

        let unknown = try await E2E.run(["bench", "gpus", "--config", config], directory: root)
        #expect(unknown.status != 0 && unknown.stderr.contains("unknown suite 'gpus'"))

        // The daemon serves the same export for `compare --with http://…`.
        try await daemon.start()
        let reply = await E2E.get(daemon.base + "/api/v1/benchmarks")
        #expect(reply?.0 == 200)
        #expect(reply?.2.contains("vigil-bench-export/1") == true)
        let remote = try await E2E.run(["bench", "compare", "--quick", "--with", daemon.base, "--config", config], directory: root)
        #expect(remote.status == 0 && remote.stdout.contains("1.00×"), "\(remote.stdout)\(remote.stderr)")
    }
}
