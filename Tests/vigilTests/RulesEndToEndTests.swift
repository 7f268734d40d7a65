import Dispatch
import Foundation
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

private func rule(_ summary: String, pending: String = "0s") -> String {
    """
    local vigil = require "vigil"
    vigil.alert "E2eLoad" { every = "1s", query = "node_load1", pending = "\(pending)",
                            fire = function(s) return s.value >= 0 end, summary = "\(summary)" }
    """
}

@Suite("alert rules in the running daemon", .serialized)
struct RulesEndToEndTests {
    @Test("an edited rule is live without a restart; a broken edit keeps the last good one; silences from the CLI apply")
    func hotReload() async throws {
        let daemon = try TestDaemon(config: "", rules: ["load.lua": rule("version one")])
        try await daemon.start()
        var reply = try await daemon.poll("/api/v1/alerts") { daemon.summary($0, "E2eLoad") == "version one" }
        #expect(daemon.summary(reply, "E2eLoad") == "version one")

        try daemon.write("load.lua", rule("version two"))
        reply = try await daemon.poll("/api/v1/alerts") { daemon.summary($0, "E2eLoad") == "version two" }
        #expect(daemon.summary(reply, "E2eLoad") == "version two")
        #expect(daemon.alert(reply, "E2eLoad")?["state"] as? String == "firing")

        try daemon.write("load.lua", "local vigil = require 'vigil'\nvigil.alert 'E2eLoad' { query = 'node_load1', every = 'often' }\n")
        let rules = try await daemon.poll("/api/v1/rules") { (($0["files"] as? [[String: Any]])?.first?["error"] as? String) != nil }
        let fileError = (rules["files"] as? [[String: Any]])?.first?["error"] as? String ?? ""
        #expect(fileError.contains("load.lua:2:") && fileError.contains("every must be a duration"), "\(fileError)")
        reply = try await daemon.poll("/api/v1/alerts") { _ in true }
        #expect(daemon.summary(reply, "E2eLoad") == "version two", "the last good version keeps running")
        let listed = try await E2E.run(["rules", "--config", daemon.configPath, "--url", daemon.base])
        #expect(listed.status == 1)
        #expect(listed.stdout.contains("E2eLoad") && listed.stdout.contains("every must be a duration"), "\(listed.stdout)\(listed.stderr)")

        let added = try await daemon.cli(["silence", "add", "alertname=E2eLoad", "--duration", "1h", "--comment", "e2e", "--config", daemon.configPath])
        #expect(added.status == 0, "\(added.stderr)")
        reply = try await daemon.poll("/api/v1/alerts") { (daemon.alert($0, "E2eLoad")?["silencedBy"] as? [String])?.isEmpty == false }
        #expect((daemon.alert(reply, "E2eLoad")?["silencedBy"] as? [String]) == [added.stdout.trimmingCharacters(in: .whitespacesAndNewlines)])
        let alerts = try await E2E.run(["alerts", "--config", daemon.configPath, "--url", daemon.base])
        #expect(alerts.stdout.contains("firing (silenced)"), "\(alerts.stdout)")
        let silences = try await daemon.cli(["silence", "ls", "--config", daemon.configPath])
        #expect(silences.stdout.contains("alertname=E2eLoad") && silences.stdout.contains("active"), "\(silences.stdout)")

        let metrics = await E2E.get(daemon.base + "/metrics")?.2 ?? ""
        #expect(metrics.contains(#"vigil_rule_health{file="rules/load.lua",health="ok",rule="E2eLoad"} 1"#), "\(metrics.prefix(300))")
        #expect(metrics.contains(#"ALERTS{alertname="E2eLoad",alertstate="firing",severity="warning"} 1"#))
    }

    @Test("SIGHUP reloads at once; a restart keeps pending timers and firing alerts")
    func hangupAndRestart() async throws {
        // The folder is only looked at every hour: what changes the rule is the signal.
        let daemon = try TestDaemon(config: "rules:\n  watch_interval: 1h\n",
                                     rules: ["load.lua": rule("before", pending: "1h"), "fire.lua": """
                                        local vigil = require "vigil"
                                        vigil.alert "E2eFiring" { every = "1s", query = "node_load1" }
                                        """])
        try await daemon.start()
        var reply = try await daemon.poll("/api/v1/alerts") {
            daemon.alert($0, "E2eLoad")?["state"] as? String == "pending" && daemon.alert($0, "E2eFiring")?["state"] as? String == "firing"
        }
        let activeAt = try #require(daemon.alert(reply, "E2eLoad")?["activeAt"] as? Int)
        let firedAt = try #require(daemon.alert(reply, "E2eFiring")?["firedAt"] as? Int)

        try daemon.write("load.lua", rule("after", pending: "1h"))
        try await Task.sleep(for: .milliseconds(1500))
        reply = try await daemon.poll("/api/v1/alerts") { _ in true }
        #expect(daemon.summary(reply, "E2eLoad") == "before", "not reloaded without the signal")
        kill(daemon.process!.processIdentifier, SIGHUP)
        reply = try await daemon.poll("/api/v1/alerts") { daemon.summary($0, "E2eLoad") == "after" }
        #expect(daemon.summary(reply, "E2eLoad") == "after")
        #expect(daemon.alert(reply, "E2eLoad")?["activeAt"] as? Int == activeAt, "the pending timer survived the reload")

        daemon.stop()
        #expect(daemon.process?.terminationStatus == 0)
        try await daemon.start()
        reply = try await daemon.poll("/api/v1/alerts") { daemon.alert($0, "E2eLoad") != nil && daemon.alert($0, "E2eFiring") != nil }
        #expect(daemon.alert(reply, "E2eLoad")?["activeAt"] as? Int == activeAt, "pending since before the restart")
        #expect(daemon.alert(reply, "E2eLoad")?["state"] as? String == "pending")
        #expect(daemon.alert(reply, "E2eFiring")?["firedAt"] as? Int == firedAt, "firing since before the restart")
        let history = try await E2E.run(["alerts", "--history", "--config", daemon.configPath], directory: daemon.root)
        #expect(history.stdout.contains("E2eFiring") && history.stdout.contains("inactive → firing"), "\(history.stdout)")
    }
}
