import VigilCore
import VigilStore

/// The built-in collectors with their schedules from the configuration.
public enum BuiltinCollectors {
    public static let names = ["procfs", "net", "tcpstat", "vigil"]

    /// Intervals of collectors that do not follow the global default unless configured: `tcpstat`
    /// makes the kernel walk its TCP hash table, so it runs every 15 s.
    static let defaultIntervals: [String: Int64] = ["tcpstat": 15_000]

    public static func make(_ configuration: CollectorsConfiguration, store: MetricStore) -> [ScheduledCollector] {
        let all: [any Collector] = [ProcfsCollector(), NetCollector(), TCPStatCollector(), SelfCollector(store: store)]
        return all.compactMap { collector in
            var settings = configuration.overrides[collector.name] ?? CollectorSettings()
            guard settings.enabled else { return nil }
            if settings.intervalMilliseconds == nil {
                settings.intervalMilliseconds = defaultIntervals[collector.name] ?? configuration.defaultIntervalMilliseconds
            }
            return ScheduledCollector(collector, interval: settings.intervalMilliseconds!,
                                      timeout: settings.timeoutMilliseconds ?? configuration.defaultTimeoutMilliseconds)
        }
    }
}
