import VigilCore
import VigilStore

/// A source of samples. `collect()` may block (it reads /proc, a driver, a pipe): the scheduler calls
/// it on the collector's own serial queue, off Swift's cooperative pool, with a timeout.
public protocol Collector: Sendable {
    /// Short name used in logs and in the `collector` label of self-metrics (`procfs`, `net`, `nvml`).
    var name: String { get }
    /// One round: everything the collector sees now.
    func collect() throws -> SampleBatch
}

/// What one collector round produced: samples with their family metadata.
public struct SampleBatch: Sendable {
    public struct Entry: Sendable, Hashable {
        public var labels: Labels
        public var value: Double
    }

    public private(set) var families: [String: MetricMetadata] = [:]
    public private(set) var entries: [Entry] = []

    public init() {}

    public mutating func add(_ name: String, _ kind: MetricKind, help: String, labels: [String: String] = [:], _ value: Double) {
        if families[name] == nil { families[name] = MetricMetadata(kind: kind, help: help) }
        entries.append(Entry(labels: Labels(name: name, labels), value: value))
    }

    public mutating func gauge(_ name: String, _ help: String, _ labels: [String: String] = [:], _ value: Double) {
        add(name, .gauge, help: help, labels: labels, value)
    }

    public mutating func counter(_ name: String, _ help: String, _ labels: [String: String] = [:], _ value: Double) {
        add(name, .counter, help: help, labels: labels, value)
    }

    public mutating func append(contentsOf other: SampleBatch) {
        families.merge(other.families) { current, _ in current }
        entries.append(contentsOf: other.entries)
    }

    /// This batch followed by `other`.
    public func merging(_ other: SampleBatch) -> SampleBatch {
        var copy = self
        copy.append(contentsOf: other)
        return copy
    }

    /// The value of the first entry named `name` whose labels include `labels` (for tests and tools).
    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        entries.first { entry in
            entry.labels.name == name && labels.allSatisfy { entry.labels[$0.key] == $0.value }
        }?.value
    }

    public var count: Int { entries.count }
}

/// A collector with its schedule.
public struct ScheduledCollector: Sendable {
    public var collector: any Collector
    /// Milliseconds between runs.
    public var interval: Int64
    /// Milliseconds a run may take before it is abandoned and counted as an error.
    public var timeout: Int64

    public init(_ collector: any Collector, interval: Int64 = 1000, timeout: Int64 = 5000) {
        self.collector = collector
        self.interval = interval
        self.timeout = timeout
    }

    public var name: String { collector.name }
}
