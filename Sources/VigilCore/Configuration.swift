import Foundation
/// The whole program's configuration. Every field has a documented default, so Vigil runs with
/// no configuration file at all; a file (`vigil serve --config FILE`) overrides what it names.
public struct VigilConfiguration: Sendable, Equatable {
    /// Address of the HTTP server (`/metrics`, `/healthz`, later the API and dashboard).
    /// Default `127.0.0.1:9477`: loopback only.
    public var listen: ListenAddress = ListenAddress(host: "127.0.0.1", port: 9477)
    /// Where state that survives a restart lives. Default `./data` for `swift run`;
    /// the systemd unit points it at `/var/lib/vigil`.
    public var dataDirectory: String = "data"
    /// The folder of user scripts (rules, policy, recommendations). `require` in Lua resolves
    /// modules only below it. Default `./rules`; the service uses `/etc/vigil/rules`.
    public var rulesDirectory: String = "rules"
    /// The folder of collector plugins, one folder each with a `plugin.yml`; watched while the daemon
    /// runs. Default `./plugins`; the service uses `/etc/vigil/plugins`.
    public var pluginsDirectory: String = "plugins"
    public var store = StoreConfiguration()
    public var lua = LuaLimitsConfiguration()
    public var collectors = CollectorsConfiguration()
    public var rules = RulesConfiguration()
    public var alerting = AlertingConfiguration()
    public var costs = CostsConfiguration()
    public var allocator = AllocatorConfiguration()
    /// Prometheus remote-write receivers (`remote_write:`), each sent every sample the store takes in.
    public var remoteWrite: [RemoteWriteConfiguration] = []
    /// PromQL servers scripts may query (`query_sources:`), by name.
    public var querySources: [String: QuerySourceConfiguration] = [:]
    /// Where the dashboard finds Chart.js 3 (`dashboard.chart_js`); nil: Debian's libjs-chart.js.
    public var chartJS: String?
    /// The HTTP server's limits and the host names it answers for (`http:`).
    public var http = HTTPConfiguration()

    /// The allocator policy file in effect.
    public var policyPath: String {
        allocator.policyPath ?? (rulesDirectory as NSString).appendingPathComponent("policy.lua")
    }

    public init() {}
}

/// `http:` — what the HTTP server accepts.
public struct HTTPConfiguration: Sendable, Equatable {
    /// Host names (beyond loopback names and IP addresses) that requests may carry in their `Host` header
    /// (`allowed_hosts`), such as the host's DNS name when the daemon listens beyond loopback. Any other name is
    /// refused (421), which stops DNS-rebinding pages from reading the API through a victim's browser.
    public var allowedHosts: [String] = []
    /// Open connections in all (`max_connections`, default 512, lowered to fit the descriptor limit); beyond it
    /// new connections wait in the kernel's backlog.
    public var maxConnections = 512
    /// Open connections from one peer address (`max_connections_per_peer`, default 64); beyond it they are closed.
    public var maxConnectionsPerPeer = 64
    /// A request's header must arrive within this (`header_timeout`, default 10 s).
    public var headerTimeoutMilliseconds: Int64 = 10_000
    /// A connection with nothing to read or write for this long is closed (`idle_timeout`, default 60 s).
    public var idleTimeoutMilliseconds: Int64 = 60_000

    public init() {}
}

/// One remote-write receiver: Prometheus (`--web.enable-remote-write-receiver`, `/api/v1/write`),
/// VictoriaMetrics (`/api/v1/write`), Mimir, Thanos receive …
public struct RemoteWriteConfiguration: Sendable, Equatable {
    public var url: String
    /// How often new samples are sent. Default 5 s.
    public var intervalMilliseconds: Int64 = 5_000
    /// Per request. Default 10 s.
    public var timeoutMilliseconds: Int64 = 10_000
    /// Samples kept while the receiver is down; beyond it the oldest are dropped. Default 1,000,000
    /// (about 5 minutes of 3,000 series at 1 s).
    public var queueSamples: Int = 1_000_000

    public init(url: String) { self.url = url }
}

/// A Prometheus-compatible query API (Prometheus, VictoriaMetrics, Thanos …) scripts may ask with PromQL.
public struct QuerySourceConfiguration: Sendable, Equatable {
    /// Base URL, such as `http://127.0.0.1:9090` (the API is under `/api/v1/`).
    public var url: String
    /// Per query. Default 5 s.
    public var timeoutMilliseconds: Int64 = 5_000

    public init(url: String) { self.url = url }
}

/// Prices (`costs:`): what tasks are charged and what benchmark operations cost.
public struct CostsConfiguration: Sendable, Equatable {
    public var currency = "USD"
    /// One CPU core for an hour (tasks with no GPU; benchmarks). Default 0.04, about a cloud vCPU-hour.
    public var cpuCoreHour = 0.04
    /// Per GPU-hour by model: a key matches a model name containing it (`H100`, `A100`), the longest wins.
    public var gpuHour: [String: Double] = [:]
    /// Per GPU-hour for models no key matches. Default 2.0.
    public var defaultGPUHour = 2.0
    /// Energy, per kWh drawn by the task's share of its GPUs. Default 0.15.
    public var kwh = 0.15
    /// Local-time windows in which prices are multiplied by `offPeakFactor` and off-peak tasks may start.
    public var offPeak: [OffPeakWindow] = []
    /// Default 0.5.
    public var offPeakFactor = 0.5

    public init() {}
}

/// A daily window in local time, `22:00-06:00` (it may wrap past midnight).
public struct OffPeakWindow: Sendable, Equatable, CustomStringConvertible {
    public var startMinute: Int
    public var endMinute: Int

    public init?(parsing text: String) {
        let parts = text.split(separator: "-").map { $0.trimmingCharacters(in: .whitespaces) }
        func minute(_ part: String) -> Int? {
            let hm = part.split(separator: ":")
            guard hm.count == 2, let h = Int(hm[0]), let m = Int(hm[1]), (0...24).contains(h), (0..<60).contains(m),
                  h * 60 + m <= 1440 else { return nil }
            return h * 60 + m
        }
        guard parts.count == 2, let start = minute(parts[0]), let end = minute(parts[1]), start != end else { return nil }
        startMinute = start % 1440
        endMinute = end % 1440
    }

    public func contains(minuteOfDay minute: Int) -> Bool {
        startMinute < endMinute ? (startMinute..<endMinute).contains(minute) : (minute >= startMinute || minute < endMinute)
    }

    public var description: String {
        String(format: "%02d:%02d-%02d:%02d", startMinute / 60, startMinute % 60, endMinute / 60, endMinute % 60)
    }
}

/// The task allocator (`allocator:`).
public struct AllocatorConfiguration: Sendable, Equatable {
    /// The policy script. Default `policy.lua` in the rules folder.
    public var policyPath: String?
    /// Between SIGTERM and SIGKILL when a task is cancelled or stopped. Default 10 s.
    public var graceMilliseconds: Int64 = 10_000
    /// How often the allocator looks at its tasks and places work (it also wakes on submit and exit). Default 250 ms.
    public var intervalMilliseconds: Int64 = 250

    public init() {}
}

public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`, `[v6]:PORT` or `:PORT` (loopback).
    public init?(parsing text: String) {
        let trimmed = text.trimmingSpaces()
        guard let colon = trimmed.lastIndex(of: ":"), let port = Int(trimmed[trimmed.index(after: colon)...]),
              (0...65535).contains(port) else { return nil }
        var host = String(trimmed[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host.isEmpty ? "127.0.0.1" : host
        self.port = port
    }

    public var isLoopback: Bool {
        host == "127.0.0.1" || host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public struct StoreConfiguration: Sendable, Equatable {
    /// How long samples are kept in memory. Default 24 h. Memory is bounded by it.
    public var retentionMilliseconds: Int64 = 24 * 3_600_000
    /// How far back an instant query looks for the last sample (Prometheus' lookback delta). Default 5 m.
    public var lookbackMilliseconds: Int64 = 5 * 60_000
    /// Most series collectors and plugins may create (`store.max_series`). Default 500,000: past it new series are
    /// refused (counted in `vigil_store_series_refused_total`, logged, and alerted on by VigilSeriesLimit) and the
    /// ones already held keep their samples. Vigil's own series are never refused.
    public var maxSeries: Int = 500_000

    public init() {}
}

/// Limits applied to every Lua state and call (see `LuaLimits` in VigilLua).
public struct LuaLimitsConfiguration: Sendable, Equatable {
    /// Bytes one Lua state may hold. Default 8 MiB.
    public var memoryBytes: Int = 8 * 1024 * 1024
    /// VM instructions one call may run. Default 1,000,000. 0 turns the budget off.
    public var instructions: Int = 1_000_000
    /// Wall-clock time one call may take. Default 250 ms. 0 turns the deadline off.
    public var deadlineMilliseconds: Int64 = 250
    /// Bytes `print` may write in one call. Default 64 KiB.
    public var outputBytes: Int = 64 * 1024
    /// Nested Lua calls one call may make. Default 10,000.
    public var callDepth: Int = 10_000

    public init() {}
}

public struct CollectorsConfiguration: Sendable, Equatable {
    /// Interval of a collector that names none. Default 1 s.
    public var defaultIntervalMilliseconds: Int64 = 1000
    /// Time a collector may take before its run is abandoned and counted as an error. Default 5 s
    /// (never more than the collector's own interval allows for the next run: overruns are skipped).
    public var defaultTimeoutMilliseconds: Int64 = 5000
    /// Per built-in collector (`procfs`, `net`, `tcpstat`, `nvml`, `vigil`): enabled, interval, timeout.
    public var overrides: [String: CollectorSettings] = [:]
    /// The NVML library the `nvml` collector opens (`collectors.nvml.library`). Default
    /// `libnvidia-ml.so.1` from the loader's path; `VIGIL_NVML_LIBRARY` in the environment wins.
    public var nvmlLibrary: String?

    public init() {}

    public func settings(for name: String) -> CollectorSettings {
        var settings = overrides[name] ?? CollectorSettings()
        if settings.intervalMilliseconds == nil { settings.intervalMilliseconds = defaultIntervalMilliseconds }
        if settings.timeoutMilliseconds == nil { settings.timeoutMilliseconds = defaultTimeoutMilliseconds }
        return settings
    }
}

public struct CollectorSettings: Sendable, Equatable {
    public var enabled: Bool = true
    public var intervalMilliseconds: Int64?
    public var timeoutMilliseconds: Int64?

    public init(enabled: Bool = true, intervalMilliseconds: Int64? = nil, timeoutMilliseconds: Int64? = nil) {
        self.enabled = enabled
        self.intervalMilliseconds = intervalMilliseconds
        self.timeoutMilliseconds = timeoutMilliseconds
    }
}

/// The rule engine (`rules:` in the configuration file).
public struct RulesConfiguration: Sendable, Equatable {
    /// Interval of a rule whose file and declaration name none. Default 15 s.
    public var defaultIntervalMilliseconds: Int64 = 15_000
    /// Consecutive failed evaluations before a rule is quarantined. Default 5.
    public var quarantineAfter = 5
    /// How long a resolved alert is kept and re-sent. Default 15 m.
    public var resolvedRetentionMilliseconds: Int64 = 15 * 60_000
    /// How often the rules folder is checked for changed files. Default 500 ms (SIGHUP reloads at once).
    public var watchIntervalMilliseconds: Int64 = 500

    public init() {}
}

/// Where alerts go (`alerting:`): receivers with Alertmanager-style grouping, inhibition, and
/// Alertmanagers to push to.
public struct AlertingConfiguration: Sendable, Equatable {
    /// Alertmanager base URLs; firing alerts are pushed to `/api/v2/alerts` and re-sent every `resend_delay`.
    public var alertmanagers: [String] = []
    /// Default 1 m (Prometheus' `--rules.alert.resend-delay`).
    public var resendDelayMilliseconds: Int64 = 60_000
    /// Labels that make a notification group. `["..."]` groups by every label. Default `[alertname]`.
    public var groupBy: [String] = ["alertname"]
    public var groupWaitMilliseconds: Int64 = 30_000
    public var groupIntervalMilliseconds: Int64 = 5 * 60_000
    public var repeatIntervalMilliseconds: Int64 = 4 * 3_600_000
    /// Default: one receiver, the log.
    public var receivers: [ReceiverConfiguration] = [ReceiverConfiguration(name: "log", kind: .log)]
    public var inhibitRules: [InhibitRuleConfiguration] = []
    /// Base of the links in notifications. Default `http://` + the listen address.
    public var externalURL: String?

    public init() {}
}

public struct ReceiverConfiguration: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case log
        /// POSTs Alertmanager's webhook payload (version 4).
        case webhook(url: String)
        /// Runs the command with the same payload on standard input.
        case command([String])
    }

    public var name: String
    public var kind: Kind
    /// A selector such as `{severity="critical"}`: only matching alerts reach this receiver. Nil: all.
    public var match: String?
    /// Send a notification when the group's alerts resolve. Default true.
    public var sendResolved = true
    /// Per attempt. Default 10 s.
    public var timeoutMilliseconds: Int64 = 10_000

    public init(name: String, kind: Kind, match: String? = nil) {
        self.name = name
        self.kind = kind
        self.match = match
    }
}

/// Alertmanager's inhibit rule: while a `source` alert fires, `target` alerts with the same `equal` labels are muted.
public struct InhibitRuleConfiguration: Sendable, Equatable {
    public var source: String
    public var target: String
    public var equal: [String]

    public init(source: String, target: String, equal: [String]) {
        self.source = source
        self.target = target
        self.equal = equal
    }
}
