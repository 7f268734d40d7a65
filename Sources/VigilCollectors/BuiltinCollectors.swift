import VigilCore
import VigilStore

/// The built-in collectors with their schedules from the configuration.
public enum BuiltinCollectors {
    public static let names = ["procfs", "net", "vigil"]

    public static func make(_ configuration: CollectorsConfiguration, store: MetricStore) -> [ScheduledCollector] {
        let all: [any Collector] = [ProcfsCollector(), NetCollector(), SelfCollector(store: store)]
        return all.compactMap { collector in
            let settings = configuration.settings(for: collector.name)
            guard settings.enabled else { return nil }
            return ScheduledCollector(collector, interval: settings.intervalMilliseconds ?? 1000,
                                      timeout: settings.timeoutMilliseconds ?? 5000)
        }
    }
}
