import Foundation
import VigilCollectors
import VigilCore
import VigilRules
import Yams

/// Reads `vigil.yml`. Every key is optional; an unknown key, a wrong type or a bad duration is an
/// error that names the file, the line and the key.
enum ConfigurationLoader {
    /// `alerting:` — Alertmanagers, grouping, receivers and inhibit rules.
    static func parseAlerting(_ node: Node, path: String, reader: YAMLReader, into alerting: inout AlertingConfiguration) throws {
        try reader.mapping(node, path: path) { key, value, path in
            switch key {
            case "alertmanagers": alerting.alertmanagers = try reader.strings(value, path)
            case "resend_delay": alerting.resendDelayMilliseconds = try reader.positiveDuration(value, path)
            case "group_by": alerting.groupBy = try reader.strings(value, path)
            case "group_wait": alerting.groupWaitMilliseconds = try reader.duration(value, path)
            case "group_interval": alerting.groupIntervalMilliseconds = try reader.positiveDuration(value, path)
            case "repeat_interval": alerting.repeatIntervalMilliseconds = try reader.positiveDuration(value, path)
            case "external_url": alerting.externalURL = try reader.string(value, path)
            case "receivers":
                guard let items = value.sequence else { throw reader.error(value, "\(path) must be a list of receivers") }
                alerting.receivers = try items.enumerated().map { index, item in
                    try parseReceiver(item, path: "\(path)[\(index)]", reader: reader)
                }
                let names = alerting.receivers.map(\.name)
                if let duplicate = names.first(where: { name in names.filter { $0 == name }.count > 1 }) {
                    throw reader.error(value, "two receivers are named '\(duplicate)'")
                }
            case "inhibit_rules":
                guard let items = value.sequence else { throw reader.error(value, "\(path) must be a list") }
                alerting.inhibitRules = try items.map { item in
                    var source: String?, target: String?, equal: [String] = []
                    try reader.mapping(item, path: path) { key, value, path in
                        switch key {
                        case "source": source = try reader.string(value, path)
                        case "target": target = try reader.string(value, path)
                        case "equal": equal = try reader.strings(value, path)
                        default: throw reader.unknown(key, value, path)
                        }
                    }
                    guard let source, let target else { throw reader.error(item, "an inhibit rule needs source and target matchers") }
                    let rule = InhibitRuleConfiguration(source: source, target: target, equal: equal)
                    do { _ = try InhibitRule(rule) } catch { throw reader.error(item, "\(error)") }
                    return rule
                }
            default: throw reader.unknown(key, value, path)
            }
        }
    }

    private static func parseReceiver(_ node: Node, path: String, reader: YAMLReader) throws -> ReceiverConfiguration {
        var name: String?, kind: ReceiverConfiguration.Kind?, match: String?
        var sendResolved = true
        var timeout: Int64 = 10_000
        try reader.mapping(node, path: path) { key, value, path in
            switch key {
            case "name": name = try reader.string(value, path)
            case "log": if try reader.bool(value, path) { kind = .log }
            case "webhook":
                let url = try reader.string(value, path)
                guard url.hasPrefix("http://") || url.hasPrefix("https://") else { throw reader.error(value, "\(path) must be an http:// or https:// URL") }
                kind = .webhook(url: url)
            case "command":
                let argv = try reader.strings(value, path)
                guard !argv.isEmpty else { throw reader.error(value, "\(path) needs a program") }
                kind = .command(argv)
            case "match":
                let text = try reader.string(value, path)
                do { _ = try Silences.parseMatchers(text) } catch { throw reader.error(value, "\(path): \(error)") }
                match = text
            case "send_resolved": sendResolved = try reader.bool(value, path)
            case "timeout": timeout = try reader.positiveDuration(value, path)
            default: throw reader.unknown(key, value, path)
            }
        }
        guard let kind else { throw reader.error(node, "\(path) needs one of log: true, webhook: URL or command: [program, args…]") }
        var receiver = ReceiverConfiguration(name: name ?? {
            switch kind {
            case .log: "log"
            case .webhook: "webhook"
            case .command: "command"
            }
        }(), kind: kind, match: match)
        receiver.sendResolved = sendResolved
        receiver.timeoutMilliseconds = timeout
        return receiver
    }

    static func load(path: String) throws -> VigilConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw VigilError(.invalidConfiguration, "cannot read the configuration file: \(error.localizedDescription)", location: path)
        }
        return try parse(text, file: path)
    }

    private static func price(_ node: Node, _ path: String, reader: YAMLReader) throws -> Double {
        let text = try reader.string(node, path)
        guard !text.lowercased().contains("x"), let value = Double(text), value >= 0, value.isFinite else { throw reader.error(node, "\(path) must be a number ≥ 0, such as 2.5") }
        return value
    }

    static func parse(_ text: String, file: String) throws -> VigilConfiguration {
        var configuration = VigilConfiguration()
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw VigilError(.invalidConfiguration, "not valid YAML: \(error)", location: file)
        }
        guard let root else { return configuration }
        let reader = YAMLReader(file: file)
        try reader.mapping(root, path: "") { key, value, path in
            switch key {
            case "listen":
                let text = try reader.string(value, path)
                guard let address = ListenAddress(parsing: text) else {
                    throw reader.error(value, "\(path) must be HOST:PORT, got \"\(text)\"")
                }
                configuration.listen = address
            case "data_dir": configuration.dataDirectory = try reader.string(value, path)
            case "http":
                try reader.mapping(value, path: path) { key, value, path in
                    switch key {
                    case "allowed_hosts":
                        configuration.http.allowedHosts = try reader.strings(value, path).map { $0.lowercased() }
                        if let bad = configuration.http.allowedHosts.first(where: { $0.isEmpty || $0.contains(where: { " /:@".contains($0) }) }) {
                            throw reader.error(value, "\(path) takes host names without port or scheme, such as gpu01.example.org, not \"\(bad)\"")
                        }
                    case "max_connections", "max_connections_per_peer":
                        let count = try reader.integer(value, path)
                        guard (1...1_000_000).contains(count) else { throw reader.error(value, "\(path) must be from 1 to 1000000") }
                        if key == "max_connections" { configuration.http.maxConnections = count } else { configuration.http.maxConnectionsPerPeer = count }
                    case "header_timeout": configuration.http.headerTimeoutMilliseconds = try reader.positiveDuration(value, path)
                    case "idle_timeout": configuration.http.idleTimeoutMilliseconds = try reader.positiveDuration(value, path)
                    default: throw reader.unknown(key, value, path)
                    }
                }
            case "rules_dir": configuration.rulesDirectory = try reader.string(value, path)
            case "plugins_dir": configuration.pluginsDirectory = try reader.string(value, path)
            case "store":
                try reader.mapping(value, path: path) { key, value, path in
                    switch key {
                    case "retention": configuration.store.retentionMilliseconds = try reader.duration(value, path)
                    case "lookback": configuration.store.lookbackMilliseconds = try reader.duration(value, path)
                    case "max_series":
                        configuration.store.maxSeries = try reader.integer(value, path)
                        guard (1...100_000_000).contains(configuration.store.maxSeries) else {
                            throw reader.error(value, "\(path) must be from 1 to 100000000")
                        }
                    default: throw reader.unknown(key, value, path)
                    }
                }
            case "lua":
                try reader.mapping(value, path: path) { key, value, path in
                    switch key {
                    case "memory": configuration.lua.memoryBytes = try reader.bytes(value, path)
                    case "instructions": configuration.lua.instructions = try reader.integer(value, path)
                    case "deadline": configuration.lua.deadlineMilliseconds = try reader.duration(value, path)
                    case "output": configuration.lua.outputBytes = try reader.bytes(value, path)
                    case "call_depth": configuration.lua.callDepth = try reader.integer(value, path)
                    default: throw reader.unknown(key, value, path)
                    }
                }
            case "collectors":
                try reader.mapping(value, path: path) { key, value, path in
                    switch key {
                    case "interval": configuration.collectors.defaultIntervalMilliseconds = try reader.positiveDuration(value, path)
                    case "timeout": configuration.collectors.defaultTimeoutMilliseconds = try reader.positiveDuration(value, path)
                    default:
                        guard BuiltinCollectors.names.contains(key) else {
                            throw reader.error(value, "unknown collector '\(key)' in collectors (known: \(BuiltinCollectors.names.joined(separator: ", ")))")
                        }
                        var settings = CollectorSettings()
                        try reader.mapping(value, path: path) { key, value, path in
                            switch key {
                            case "enabled": settings.enabled = try reader.bool(value, path)
                            case "interval": settings.intervalMilliseconds = try reader.positiveDuration(value, path)
                            case "timeout": settings.timeoutMilliseconds = try reader.positiveDuration(value, path)
                            case "library" where path == "collectors.nvml.library":
                                configuration.collectors.nvmlLibrary = try reader.string(value, path)
                            default: throw reader.unknown(key, value, path)
                            }
                        }
                        configuration.collectors.overrides[key] = settings
                    }
                }
            case "rules":
                try reader.mapping(value, path: path) { key, value, path in
                    switch key {
                    case "interval": configuration.rules.defaultIntervalMilliseconds = try reader.positiveDuration(value, path)
                    case "quarantine_after": configuration.rules.quarantineAfter = max(1, try reader.integer(value, path))
                    case "resolved_retention": configuration.rules.resolvedRetentionMilliseconds = try reader.duration(value, path)
                    case "watch_interval": configuration.rules.watchIntervalMilliseconds = try reader.positiveDuration(value, path)
                    default: throw reader.unknown(key, value, path)
                    }
                }
            case "alerting":
                try parseAlerting(value, path: path, reader: reader, into: &configuration.alerting)
            case "costs":
                try reader.mapping(value, path: path) { key, value, path in
                    switch key {
                    case "currency": configuration.costs.currency = try reader.string(value, path)
                    case "cpu_core_hour": configuration.costs.cpuCoreHour = try price(value, path, reader: reader)
                    case "gpu_hour":
                        if value.scalar != nil {
                            configuration.costs.defaultGPUHour = try price(value, path, reader: reader)
                        } else {
                            try reader.mapping(value, path: path) { model, value, path in
                                if model == "default" {
                                    configuration.costs.defaultGPUHour = try price(value, path, reader: reader)
                                } else {
                                    configuration.costs.gpuHour[model] = try price(value, path, reader: reader)
                                }
                            }
                        }
                    case "kwh": configuration.costs.kwh = try price(value, path, reader: reader)
                    case "off_peak":
                        try reader.mapping(value, path: path) { key, value, path in
                            switch key {
                            case "windows":
                                configuration.costs.offPeak = try reader.strings(value, path).map { text in
                                    guard let window = OffPeakWindow(parsing: text) else {
                                        throw reader.error(value, "\(path): \"\(text)\" is not a window such as 22:00-06:00")
                                    }
                                    return window
                                }
                            case "factor": configuration.costs.offPeakFactor = try price(value, path, reader: reader)
                            default: throw reader.unknown(key, value, path)
                            }
                        }
                    default: throw reader.unknown(key, value, path)
                    }
                }
            case "dashboard":
                try reader.mapping(value, path: path) { key, value, path in
                    switch key {
                    case "chart_js": configuration.chartJS = try reader.string(value, path)
                    default: throw reader.unknown(key, value, path)
                    }
                }
            case "allocator":
                try reader.mapping(value, path: path) { key, value, path in
                    switch key {
                    case "policy": configuration.allocator.policyPath = try reader.string(value, path)
                    case "grace": configuration.allocator.graceMilliseconds = try reader.duration(value, path)
                    case "interval": configuration.allocator.intervalMilliseconds = try reader.positiveDuration(value, path)
                    default: throw reader.unknown(key, value, path)
                    }
                }
            case "remote_write":
                guard let items = value.sequence else { throw reader.error(value, "\(path) must be a list of { url: … }") }
                configuration.remoteWrite = try items.enumerated().map { index, item in
                    var url: String?
                    var settings = RemoteWriteConfiguration(url: "")
                    try reader.mapping(item, path: "\(path)[\(index)]") { key, value, path in
                        switch key {
                        case "url": url = try httpURL(value, path, reader: reader)
                        case "interval": settings.intervalMilliseconds = try reader.positiveDuration(value, path)
                        case "timeout": settings.timeoutMilliseconds = try reader.positiveDuration(value, path)
                        case "queue": settings.queueSamples = max(1, try reader.integer(value, path))
                        default: throw reader.unknown(key, value, path)
                        }
                    }
                    guard let url else { throw reader.error(item, "\(path)[\(index)] needs a url, such as http://127.0.0.1:8428/api/v1/write") }
                    settings.url = url
                    return settings
                }
            case "query_sources":
                try reader.mapping(value, path: path) { name, value, path in
                    var source = QuerySourceConfiguration(url: "")
                    var url: String?
                    try reader.mapping(value, path: path) { key, value, path in
                        switch key {
                        case "url": url = try httpURL(value, path, reader: reader)
                        case "timeout": source.timeoutMilliseconds = try reader.positiveDuration(value, path)
                        default: throw reader.unknown(key, value, path)
                        }
                    }
                    guard let url else { throw reader.error(value, "\(path) needs a url, such as http://127.0.0.1:9090") }
                    source.url = url
                    configuration.querySources[name] = source
                }
            default:
                throw reader.unknown(key, value, path)
            }
        }
        return configuration
    }

    private static func httpURL(_ node: Node, _ path: String, reader: YAMLReader) throws -> String {
        let text = try reader.string(node, path)
        guard let url = URL(string: text), url.scheme == "http" || url.scheme == "https", url.host != nil else {
            throw reader.error(node, "\(path) must be an http:// or https:// URL, got \"\(text)\"")
        }
        return text
    }
}
