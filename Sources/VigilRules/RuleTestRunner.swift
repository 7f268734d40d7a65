import Foundation
import Logging
import VigilCore
import VigilStore
import Yams

/// Runs rule tests in promtool's format (`promtool test rules`) against Lua rule files, on virtual time,
/// without a daemon: `input_series` in the expanding notation, `alert_rule_test` with `eval_time` and
/// `exp_alerts` (only firing alerts are compared, as promtool does). Vigil adds `exp_pending`, compared
/// only when present.
public struct RuleTestRunner {
    public struct CaseResult: Sendable {
        public var file: String
        public var name: String
        public var failures: [String]
        public var seconds: Double
        public var passed: Bool { failures.isEmpty }
    }

    public var runFilters: [NSRegularExpression] = []
    public var logger: Logger

    public init(runFilters: [String] = [], logger: Logger) throws {
        self.runFilters = try runFilters.map { try NSRegularExpression(pattern: $0) }
        self.logger = logger
    }

    /// Runs every test group of `path`; a file that cannot be read or parsed is one failed case.
    public func run(path: String) -> [CaseResult] {
        do {
            return try runFile(path)
        } catch {
            return [CaseResult(file: path, name: "(file)", failures: ["\(error)"], seconds: 0)]
        }
    }

    private struct InputSeries {
        var labels: Labels
        var values: [Double?]
    }

    private struct ExpectedAlert: Equatable {
        var labels: [String: String]
        var annotations: [String: String]

        var text: String {
            var out = Labels(dictionary: labels).description
            if !annotations.isEmpty {
                out += " " + annotations.keys.sorted().map { "\($0)=\"\(annotations[$0]!)\"" }.joined(separator: " ")
            }
            return out
        }
    }

    private struct AlertCheck {
        var evalTime: Int64
        var alertname: String
        var expected: [ExpectedAlert]
        var expectedPending: [ExpectedAlert]?
    }

    private func runFile(_ path: String) throws -> [CaseResult] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        guard let root = try Yams.compose(yaml: text) else { throw VigilError(.parse, "empty test file", location: path) }
        let reader = YAMLReader(file: path)
        let folder = (path as NSString).deletingLastPathComponent
        var ruleFiles: [String] = []
        var evaluationInterval: Int64 = 60_000
        var groups: [Node] = []
        try reader.mapping(root, path: "") { key, value, path in
            switch key {
            case "rule_files":
                for pattern in try reader.strings(value, path) {
                    let full = pattern.hasPrefix("/") ? pattern : (folder as NSString).appendingPathComponent(pattern)
                    let matches = Self.glob(full)
                    guard !matches.isEmpty else { throw reader.error(value, "rule file \(pattern) matches nothing") }
                    ruleFiles += matches
                }
            case "evaluation_interval": evaluationInterval = try reader.positiveDuration(value, path)
            case "tests":
                guard let items = value.sequence else { throw reader.error(value, "tests must be a list") }
                groups = Array(items)
            case "group_eval_order", "fuzzy_compare":
                break // accepted for compatibility; rules run in file order
            default: throw reader.unknown(key, value, path)
            }
        }
        var results: [CaseResult] = []
        for (index, group) in groups.enumerated() {
            let started = DispatchTime.now().uptimeNanoseconds
            var name = "test \(index + 1)"
            if let mapping = group.mapping, let node = mapping["name"], let given = node.string { name = given }
            if !runFilters.isEmpty && !runFilters.contains(where: {
                $0.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil
            }) { continue }
            var failures: [String]
            do {
                failures = try runGroup(group, reader: reader, ruleFiles: ruleFiles, evaluationInterval: evaluationInterval,
                                        folder: folder)
            } catch {
                failures = ["\(error)"]
            }
            results.append(CaseResult(file: path, name: name, failures: failures,
                                      seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9))
        }
        return results
    }

    private func runGroup(_ node: Node, reader: YAMLReader, ruleFiles: [String], evaluationInterval: Int64,
                          folder: String) throws -> [String] {
        var interval = evaluationInterval
        var start: Int64 = 0
        var series: [InputSeries] = []
        var seriesNodes: [Node] = []
        var checks: [AlertCheck] = []
        var externalURL = "http://localhost:9477"
        try reader.mapping(node, path: "tests[]") { key, value, path in
            switch key {
            case "name": break
            case "interval": interval = try reader.positiveDuration(value, path)
            case "start_timestamp":
                let text = try reader.string(value, path)
                if let seconds = Double(text) {
                    start = Int64(seconds * 1000)
                } else if let date = ISO8601DateFormatter().date(from: text) {
                    start = Int64(date.timeIntervalSince1970 * 1000)
                } else {
                    throw reader.error(value, "start_timestamp must be Unix seconds or RFC 3339")
                }
            case "input_series":
                guard let items = value.sequence else { throw reader.error(value, "input_series must be a list") }
                seriesNodes = Array(items)
            case "alert_rule_test":
                guard let items = value.sequence else { throw reader.error(value, "alert_rule_test must be a list") }
                checks = try items.map { try parseCheck($0, reader: reader) }
            case "promql_expr_test":
                throw reader.error(value, "promql_expr_test needs PromQL, and Vigil's rules are Lua: test alerts with alert_rule_test")
            case "external_labels":
                // Accepted for promtool compatibility and checked; Vigil's templates have no $externalLabels.
                try reader.mapping(value, path: path) { key, value, path in _ = try reader.string(value, path) }
            case "external_url": externalURL = try reader.string(value, path)
            default: throw reader.unknown(key, value, path)
            }
        }
        for item in seriesNodes {
            var labels: Labels?
            var values: [Double?] = []
            try reader.mapping(item, path: "input_series[]") { key, value, path in
                switch key {
                case "series":
                    let text = try reader.string(value, path)
                    do {
                        labels = try Self.parseSeries(text)
                    } catch {
                        throw reader.error(value, "series \(text): \(error)")
                    }
                case "values":
                    let text = try reader.string(value, path)
                    do {
                        values = try Self.expand(text)
                    } catch {
                        throw reader.error(value, "values '\(text)': \(error)")
                    }
                default: throw reader.unknown(key, value, path)
                }
            }
            guard let labels else { throw reader.error(item, "input series need a series") }
            series.append(InputSeries(labels: labels, values: values))
        }

        // The store holds everything for the whole test: no retention pressure.
        let store = MetricStore(retention: Int64.max / 4)
        for input in series {
            let ref = store.series(input.labels)
            for (i, value) in input.values.enumerated() {
                guard let value else { continue }
                store.append(ref, start + Int64(i) * interval, value)
            }
        }
        var options = RuleEngineOptions(rulesDirectory: folder)
        options.files = ruleFiles
        options.intervalOverride = evaluationInterval
        options.exportMetrics = false
        options.externalURL = externalURL
        var quiet = logger
        quiet.logLevel = .critical
        let engine = RuleEngine(store: store, options: options, logger: quiet)
        let report = engine.reload(at: start)
        if !report.failed.isEmpty { return report.failed.map { "rule file failed to load: \($0.error)" } }

        var failures: [String] = []
        var now = start
        for check in checks.sorted(by: { $0.evalTime < $1.evalTime }) {
            let target = start + check.evalTime
            while now <= target {
                engine.tick(at: now)
                now += evaluationInterval
            }
            let alerts = engine.alerts.filter { $0.rule == check.alertname || $0.labels["alertname"] == check.alertname }
            func compare(_ state: AlertState, _ expected: [ExpectedAlert]) {
                let got = alerts.filter { $0.state == state }.map { alert -> ExpectedAlert in
                    var labels = alert.labels
                    labels["alertname"] = nil
                    return ExpectedAlert(labels: labels, annotations: alert.annotations)
                }
                let diff = Self.diff(expected: expected, got: got)
                if !diff.isEmpty {
                    failures.append("alertname \(check.alertname), \(state.rawValue) at \(DurationParser.format(milliseconds: check.evalTime)):\n"
                                    + diff.joined(separator: "\n"))
                }
            }
            if !engine.rules.contains(where: { $0.name == check.alertname }) {
                failures.append("alertname \(check.alertname): no rule of that name in \(ruleFiles.map { ($0 as NSString).lastPathComponent }.joined(separator: ", "))")
                continue
            }
            compare(.firing, check.expected)
            if let pending = check.expectedPending { compare(.pending, pending) }
            if let broken = engine.rules.first(where: { $0.name == check.alertname && $0.health != .ok }), let error = broken.lastError {
                failures.append("alertname \(check.alertname): evaluation failed: \(error)")
            }
        }
        return failures
    }

    private func parseCheck(_ node: Node, reader: YAMLReader) throws -> AlertCheck {
        var check = AlertCheck(evalTime: 0, alertname: "", expected: [], expectedPending: nil)
        func alerts(_ value: Node, _ path: String) throws -> [ExpectedAlert] {
            guard let items = value.sequence else { throw reader.error(value, "\(path) must be a list") }
            return try items.map { item in
                var expected = ExpectedAlert(labels: [:], annotations: [:])
                try reader.mapping(item, path: path) { key, value, path in
                    switch key {
                    case "exp_labels":
                        try reader.mapping(value, path: path) { key, value, path in expected.labels[key] = try reader.string(value, path) }
                    case "exp_annotations":
                        try reader.mapping(value, path: path) { key, value, path in expected.annotations[key] = try reader.string(value, path) }
                    default: throw reader.unknown(key, value, path)
                    }
                }
                return expected
            }
        }
        try reader.mapping(node, path: "alert_rule_test[]") { key, value, path in
            switch key {
            case "eval_time": check.evalTime = try reader.duration(value, path)
            case "alertname": check.alertname = try reader.string(value, path)
            case "exp_alerts": check.expected = try alerts(value, path)
            case "exp_pending": check.expectedPending = try alerts(value, path)
            default: throw reader.unknown(key, value, path)
            }
        }
        guard !check.alertname.isEmpty else { throw reader.error(node, "alert_rule_test needs an alertname") }
        return check
    }

    /// Lines of a readable diff: `- ` expected but missing, `+ ` present but not expected.
    private static func diff(expected: [ExpectedAlert], got: [ExpectedAlert]) -> [String] {
        var missing = expected
        var unexpected: [ExpectedAlert] = []
        for alert in got {
            if let index = missing.firstIndex(where: { $0.labels == alert.labels && ($0.annotations.isEmpty || $0.annotations == alert.annotations) }) {
                missing.remove(at: index)
            } else {
                unexpected.append(alert)
            }
        }
        guard !missing.isEmpty || !unexpected.isEmpty else { return [] }
        return missing.map { "    - expected: \($0.text)" } + unexpected.map { "    + got:      \($0.text)" }
    }

    /// `name{a="b"}` or `{__name__="x", a="b"}` → labels.
    static func parseSeries(_ text: String) throws -> Labels {
        let selector = try SeriesSelector(parsing: text)
        var pairs: [Label] = []
        for matcher in selector.matchers {
            guard matcher.operation == .equal else { throw VigilError(.parse, "input series take = labels only") }
            pairs.append(Label(matcher.name, matcher.value))
        }
        let labels = Labels(pairs)
        guard labels.name != nil else { throw VigilError(.parse, "the series needs a metric name") }
        return labels
    }

    /// promtool's expanding notation: `a+bxn`, `a-bxn`, `axn` (n+1 samples), `_`, `_xn` (n gaps), `stale`.
    /// Nil is a missing sample.
    static func expand(_ text: String) throws -> [Double?] {
        var out: [Double?] = []
        for token in text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }) {
            let item = String(token)
            if item == "_" { out.append(nil); continue }
            if item == "stale" { out.append(StaleMarker.value); continue }
            if item.hasPrefix("_x"), let n = Int(item.dropFirst(2)), n >= 0 {
                out += Array(repeating: nil, count: n)
                continue
            }
            // Swift's Double("0x10") reads hexadecimal; here x always means repetition.
            if !item.contains("x"), let value = Double(item) { out.append(value); continue }
            guard let x = item.lastIndex(of: "x"), let n = Int(item[item.index(after: x)...]), n >= 0 else {
                throw VigilError(.parse, "cannot read \"\(item)\" (expected a number, a+bxn, a-bxn, axn, _, _xn or stale)")
            }
            let head = item[..<x]
            // The sign between a and b is the last + or - that is not the first character or after an 'e'.
            var split: String.Index?
            var index = head.index(after: head.startIndex)
            while index < head.endIndex {
                let character = head[index]
                let previous = head[head.index(before: index)]
                if (character == "+" || character == "-") && previous != "e" && previous != "E" { split = index }
                index = head.index(after: index)
            }
            if let split {
                guard let a = Double(head[..<split]), let b = Double(head[head.index(after: split)...]) else {
                    throw VigilError(.parse, "cannot read \"\(item)\"")
                }
                let step = head[split] == "+" ? b : -b
                for i in 0...n { out.append(a + Double(i) * step) }
            } else {
                guard let a = Double(head) else { throw VigilError(.parse, "cannot read \"\(item)\"") }
                out += Array(repeating: a, count: n + 1)
            }
        }
        return out
    }

    static func glob(_ pattern: String) -> [String] {
        var result = glob_t()
        defer { globfree(&result) }
        guard Foundation.glob(pattern, 0, nil, &result) == 0 else { return [] }
        return (0..<Int(result.gl_pathc)).compactMap { result.gl_pathv[$0].map { String(cString: $0) } }.sorted()
    }

    /// JUnit XML for CI systems.
    public static func junit(_ results: [CaseResult]) -> String {
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n"
        var byFile: [String: [CaseResult]] = [:]
        for result in results { byFile[result.file, default: []].append(result) }
        for file in byFile.keys.sorted() {
            let cases = byFile[file]!
            xml += "  <testsuite name=\"\(escape(file))\" tests=\"\(cases.count)\" failures=\"\(cases.filter { !$0.passed }.count)\">\n"
            for item in cases {
                xml += "    <testcase name=\"\(escape(item.name))\" time=\"\(String(format: "%.3f", item.seconds))\""
                if item.passed {
                    xml += "/>\n"
                } else {
                    let text = item.failures.joined(separator: "\n")
                    xml += ">\n      <failure message=\"\(escape(item.failures.first?.components(separatedBy: "\n").first ?? ""))\">\(escape(text))</failure>\n    </testcase>\n"
                }
            }
            xml += "  </testsuite>\n"
        }
        return xml + "</testsuites>\n"
    }
}
