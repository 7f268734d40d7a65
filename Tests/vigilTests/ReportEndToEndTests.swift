import Foundation
import Testing

private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

@Suite("reports and recommendations through the running daemon", .serialized)
struct ReportEndToEndTests {
    static func busyGPUs(above threshold: Double) -> String {
        """
        local vigil = require "vigil"
        vigil.recommend "BusyGpu" {
          every = "1s", about = "gpu",
          query = "gpu_utilization_ratio",
          when = function(s) return s.value > \(threshold) end,
          saving = function(s) return { gpu_hours = s.value * 10 } end,
          title = "GPU {{gpu}} is {{value | percent}} busy",
        }
        """
    }

    @Test("vigil report status, cost and task, and vigil recommendations, with a recommendation script edited on disk while the daemon runs")
    func reports() async throws {
        let daemon = try TestDaemon(config: "costs:\n  currency: EUR\n  gpu_hour: { default: 4 }\n  kwh: 0\n", rules: [
            "indicators.lua": try String(contentsOf: repository.appendingPathComponent("rules/indicators.lua"), encoding: .utf8),
            "busy.lua": Self.busyGPUs(above: 0.8),
        ])
        let library = try E2E.vigil().deletingLastPathComponent().appendingPathComponent("libVigilFakeNVML.so").path
        daemon.environment = ["VIGIL_NVML_LIBRARY": library, "VIGIL_FAKE_NVML_CONFIG": try AllocatorEndToEndTests.scenario(in: daemon.root)]
        try await daemon.start()
        defer { FileManager.default.createFile(atPath: daemon.root.appendingPathComponent("go").path, contents: Data()) }
        let wait = "while [ ! -e '\(daemon.root.path)/go' ]; do sleep 0.05; done"
        #expect(try await daemon.cli(["submit", "--gpus", "1", "--name", "quick", "--", "true"]).stdout == "1\n")
        #expect(try await daemon.cli(["submit", "--gpus", "2", "--name", "long", "--", "sh", "-c", wait]).stdout == "2\n")
        _ = try await daemon.poll("/api/v1/tasks/1") { ($0["task"] as? [String: Any])?["state"] as? String == "succeeded" }
        _ = try await daemon.poll("/api/v1/tasks/2") { ($0["task"] as? [String: Any])?["state"] as? String == "running" }

        // GPUs 0 and 1 of the fake library are 92 % and 88 % busy.
        let first = try await daemon.poll("/api/v1/recommendations") { ($0["recommendations"] as? [Any])?.count == 2 }
        #expect((first["recommendations"] as? [[String: Any]])?.compactMap { $0["title"] as? String }.sorted()
                == ["GPU 0 is 92.0% busy", "GPU 1 is 88.0% busy"], "\(first)")
        let listed = try await daemon.cli(["recommendations"])
        #expect(listed.status == 0 && listed.stdout.contains("gpu 0") && listed.stdout.contains("9 GPU-h"), "\(listed.stdout)")
        // The script edited on disk: the daemon's answer changes without a restart (GPUs 3 and 5 are 71 % and 54 % busy).
        try daemon.write("busy.lua", Self.busyGPUs(above: 0.5))
        let second = try await daemon.poll("/api/v1/recommendations") { ($0["recommendations"] as? [Any])?.count == 4 }
        #expect(Set((second["recommendations"] as? [[String: Any]])?.compactMap { $0["subject_id"] as? String } ?? []) == ["0", "1", "3", "5"])
        try daemon.write("busy.lua", Self.busyGPUs(above: 0.9))
        let third = try await daemon.poll("/api/v1/recommendations?expired=1h") { ($0["recommendations"] as? [Any])?.count == 1 }
        #expect((third["expired"] as? [[String: Any]])?.count == 3, "\(third)")

        // Wait for some cost to accrue on task 2 (2 GPUs at 4 an hour).
        _ = try await daemon.poll("/api/v1/tasks/2") { (($0["task"] as? [String: Any])?["cost"] as? Double ?? 0) > 0.002 }
        let status = try await daemon.cli(["report", "status"])
        #expect(status.status == 0, "\(status.stderr)")
        for expected in ["Active tasks          1", "Finished today        1", "GPUs busy             2 of 8", "Status                Active",
                         "long", "status Active", "GPU 0 is 92.0% busy", "Cost per hour         8.00 EUR"] {
            #expect(status.stdout.contains(expected), "\(expected) missing from:\n\(status.stdout)")
        }
        let markdown = try await daemon.cli(["report", "status", "--format", "markdown"])
        #expect(markdown.stdout.hasPrefix("## Status of ") && markdown.stdout.contains("| Active tasks | 1 |"), "\(markdown.stdout)")

        let json = try await daemon.cli(["report", "cost", "--since", "1d", "--by", "task", "--format", "json"])
        let cost = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let rows = try #require(cost["rows"] as? [[String: Any]])
        #expect(cost["currency"] as? String == "EUR" && cost["by"] as? String == "task")
        #expect(abs((cost["total"] as? Double ?? -1) - rows.reduce(0) { $0 + ($1["cost"] as? Double ?? 0) }) < 1e-9)
        #expect(rows.first { $0["key"] as? String == "2" }?["label"] as? String == "long")
        let csv = try await daemon.cli(["report", "cost", "--by", "gpu", "--format", "csv"])
        let lines = csv.stdout.split(separator: "\n")
        #expect(lines.first == "gpu,model,tasks,gpu_hours,cost,share" && lines.count >= 3, "\(csv.stdout)")
        let text = try await daemon.cli(["report", "cost", "--by", "owner"])
        #expect(text.stdout.contains("Cost since ") && text.stdout.contains("TOTAL"), "\(text.stdout)")
        let task = try await daemon.cli(["report", "task", "2"])
        #expect(task.stdout.hasPrefix("Task 2: long\nrunning") && task.stdout.contains("Indicators: ") && task.stdout.contains("Duration"),
                "\(task.stdout)")

        // Mistakes get JSON errors that say what to fix.
        let badGrouping = await E2E.get(daemon.base + "/api/v1/reports/cost?by=planet")
        #expect(badGrouping?.0 == 400 && badGrouping?.2.contains("by must be one of owner, task, gpu, day") == true)
        let badWindow = await E2E.get(daemon.base + "/api/v1/reports/cost?since=lately")
        #expect(badWindow?.0 == 400 && badWindow?.2.contains("since must be a duration") == true)
        let unknown = try await daemon.cli(["report", "task", "77"])
        #expect(unknown.status == 1 && unknown.stderr.contains("no task 77"), "\(unknown.stderr)")
        let rules = try await daemon.cli(["rules"])
        #expect(rules.stdout.contains("BusyGpu"), "\(rules.stdout)")
    }
}
