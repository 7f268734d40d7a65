import Foundation
import Logging
import Testing
import VigilCore
@testable import VigilRules

private let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

@Suite("vigil rules test (promtool's format)")
struct RuleTestRunnerTests {
    @Test("the expanding notation, as promtool documents it")
    func expanding() throws {
        func values(_ text: String) throws -> [String] {
            try RuleTestRunner.expand(text).map { value in
                guard let value else { return "_" }
                return StaleMarker.isStale(value) ? "stale" : Format.number(value)
            }
        }
        #expect(try values("-2+4x3") == ["-2", "2", "6", "10"])
        #expect(try values("1-2x4") == ["1", "-1", "-3", "-5", "-7"])
        #expect(try values("0x3") == ["0", "0", "0", "0"])
        #expect(try values("1 _x3 stale") == ["1", "_", "_", "_", "stale"])
        #expect(try values("10+10x2 30+20x2") == ["10", "20", "30", "30", "50", "70"])
        #expect(try values("1e3+1e2x1") == ["1000", "1100"])
        #expect(throws: VigilError.self) { try RuleTestRunner.expand("1+x") }
    }

    @Test("the default rule pack passes its tests")
    func defaultPack() throws {
        let runner = try RuleTestRunner(logger: Logger(label: "test"))
        let folder = repositoryRoot.appendingPathComponent("rules/tests").path
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".yaml") }
        #expect(files.count >= 3)
        // Every rule of the pack has a test.
        var tested: Set<String> = []
        for file in files {
            for result in runner.run(path: folder + "/" + file) {
                #expect(result.passed, "\(file) \(result.name): \(result.failures.joined(separator: "\n"))")
            }
            let text = try String(contentsOfFile: folder + "/" + file, encoding: .utf8)
            for line in text.split(separator: "\n") where line.contains("alertname:") {
                tested.insert(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))
            }
        }
        for file in ["host.lua", "gpu.lua", "vigil.lua"] {
            guard case .success(let summary) = RuleEngine.check(path: repositoryRoot.appendingPathComponent("rules/" + file).path,
                                                                logger: Logger(label: "test")) else {
                Issue.record("\(file) does not load")
                continue
            }
            for rule in summary.alerts { #expect(tested.contains(rule), "\(rule) has no test in rules/tests") }
        }
    }

    @Test("a failing expectation prints what was expected and what came; --run filters; JUnit XML")
    func failures() throws {
        let folder = NSTemporaryDirectory() + "vigil-ruletest-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try """
            local vigil = require "vigil"
            vigil.alert "Hot" { query = "t", fire = function(s) return s.value > 80 end, summary = "at {{value}}" }
            """.write(toFile: folder + "/r.lua", atomically: true, encoding: .utf8)
        try """
            rule_files: [r.lua]
            evaluation_interval: 1m
            tests:
              - name: wrong
                interval: 1m
                input_series:
                  - series: 't{gpu="0"}'
                    values: '90x5'
                alert_rule_test:
                  - eval_time: 2m
                    alertname: Hot
                    exp_alerts:
                      - exp_labels: {gpu: "1", severity: warning}
              - name: right
                interval: 1m
                input_series:
                  - series: 't{gpu="0"}'
                    values: '90x5'
                alert_rule_test:
                  - eval_time: 2m
                    alertname: Hot
                    exp_alerts:
                      - exp_labels: {gpu: "0", severity: warning}
                        exp_annotations: {summary: at 90}
            """.write(toFile: folder + "/t.yaml", atomically: true, encoding: .utf8)
        let results = try RuleTestRunner(logger: Logger(label: "test")).run(path: folder + "/t.yaml")
        #expect(results.map(\.passed) == [false, true])
        #expect(results[0].failures == ["""
            alertname Hot, firing at 2m:
                - expected: {gpu="1", severity="warning"}
                + got:      {gpu="0", severity="warning"} summary="at 90"
            """])
        let filtered = try RuleTestRunner(runFilters: ["^right$"], logger: Logger(label: "test")).run(path: folder + "/t.yaml")
        #expect(filtered.map(\.name) == ["right"])
        let xml = RuleTestRunner.junit(results)
        #expect(xml.contains("<testsuite name=\"\(folder)/t.yaml\" tests=\"2\" failures=\"1\">"))
        #expect(xml.contains("<failure message=\"alertname Hot, firing at 2m:\">"))
    }
}
