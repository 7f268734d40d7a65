import Logging
import VigilCore
import VigilStore

/// The built-in collectors with their schedules from the configuration.
public enum BuiltinCollectors {
    public static let names = ["procfs", "net", "tcpstat", "nvml", "vigil"]

    /// Intervals of collectors that do not follow the global default unless configured: `tcpstat`
    /// makes the kernel walk its TCP hash table, so it runs every 15 s.
    static let defaultIntervals: [String: Int64] = ["tcpstat": 15_000]

    /// The enabled collectors. `nvml` is left out, after saying once why, when no NVIDIA driver is found.
    public static func make(_ configuration: CollectorsConfiguration, store: MetricStore, clock: any WallClock = SystemWallClock(),
                            logger: Logger) -> [ScheduledCollector] {
        func enabled(_ name: String) -> Bool { (configuration.overrides[name] ?? CollectorSettings()).enabled }
        var all: [any Collector] = [ProcfsCollector(), NetCollector(), TCPStatCollector()]
        if enabled("nvml") {
            do {
                all.append(try NVMLCollector(options: NVMLOptions(library: configuration.nvmlLibrary), clock: clock, logger: logger))
            } catch let error as NVMLLibrary.NotFound {
                logger.notice("no NVIDIA driver found; GPU metrics are off", metadata: ["nvml.library": "\(error.path)", "nvml.error": "\(error.reason)"])
            } catch {
                logger.notice("no NVIDIA driver found; GPU metrics are off", metadata: ["nvml.error": "\(error)"])
            }
        }
        all.append(SelfCollector(store: store))
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
