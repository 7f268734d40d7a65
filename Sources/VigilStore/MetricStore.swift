import Dispatch
import Foundation
import Synchronization
import VigilCore

/// What a metric family is, for `/metrics` and for scripts.
public struct MetricMetadata: Sendable, Hashable {
    public var kind: MetricKind
    public var help: String

    public init(kind: MetricKind, help: String) {
        self.kind = kind
        self.help = help
    }
}

/// One element of an instant vector: a label set and a value.
public struct VectorSample: Sendable, Hashable {
    public var labels: Labels
    public var value: Double

    public init(labels: Labels, value: Double) {
        self.labels = labels
        self.value = value
    }
}

/// One series with its samples in a range.
public struct SeriesSamples: Sendable, Hashable {
    public var labels: Labels
    public var samples: [Sample]
}

/// A handle on one stored series: appending through it skips the label lookup.
public struct SeriesRef: Sendable, Hashable {
    let series: Series
    public var labels: Labels { series.labels }

    public static func == (lhs: SeriesRef, rhs: SeriesRef) -> Bool { lhs.series === rhs.series }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(series)) }
}

final class Series: Sendable {
    let labels: Labels
    let data: Mutex<SeriesData>
    /// `name{label="value",…}` as the exposition writes it, made once: labels never change.
    let exposition: String
    /// Estimated bytes of this object, its lock, its index entry and its label strings (fixed).
    let overheadBytes: Int

    init(labels: Labels, encoding: ValueEncoding) {
        self.labels = labels
        exposition = PrometheusExposition.seriesText(labels)
        overheadBytes = 160 + exposition.utf8.count + labels.pairs.reduce(0) { $0 + 32 + $1.name.utf8.count + $1.value.utf8.count }
        var data = SeriesData()
        data.encoding = encoding
        self.data = Mutex(data)
    }
}

/// The shared in-memory time-series store. Many writers append at once (one lock per series; the
/// index lock only when a series is created or looked up); readers see each series consistently.
/// Samples live in compressed chunks (see `ChunkCodec`) for `retention`, and memory is bounded by it.
public final class MetricStore: Sendable {
    private struct Index {
        var series: [Labels: Series] = [:]
        var byName: [String: [Series]] = [:]
        var metadata: [String: MetricMetadata] = [:]
    }

    public let retention: Int64
    public let lookback: Int64
    public let encoding: ValueEncoding
    private let index = Mutex(Index())
    /// Appends counted by series that retention has since removed (live series count their own).
    private let appendedByRemovedSeries = Atomic<Int>(0)
    /// Bumped whenever a series is created or removed: cached selections of older generations are stale.
    private let generation = Atomic<Int>(0)
    private struct Selection {
        let generation: Int
        let refs: [SeriesRef]
    }
    private let selections = Mutex([SeriesSelector: Selection]())
    private let rejectedTotal = Atomic<Int>(0)

    /// The cap `admittedSeries(_:)` enforces.
    public let maxSeries: Int
    private let refusedSeries = Atomic<Int>(0)

    public init(retention: Int64 = 24 * 3_600_000, lookback: Int64 = 5 * 60_000, encoding: ValueEncoding = .decimal,
                maxSeries: Int = 500_000) {
        self.retention = retention
        self.lookback = lookback
        self.encoding = encoding
        self.maxSeries = maxSeries
    }

    public convenience init(_ configuration: StoreConfiguration) {
        self.init(retention: configuration.retentionMilliseconds, lookback: configuration.lookbackMilliseconds,
                  maxSeries: configuration.maxSeries)
    }

    /// The series for `labels` when it exists or the store holds fewer than `maxSeries`; nil (and counted)
    /// otherwise. What collectors and plugins write goes through here, so a churning source cannot grow the
    /// store without bound; Vigil's own series use `series(_:)`.
    public func admittedSeries(_ labels: Labels) -> SeriesRef? {
        let (existing, count) = index.withLock { ($0.series[labels], $0.series.count) }
        if let existing { return SeriesRef(series: existing) }
        guard count < maxSeries else {
            refusedSeries.add(1, ordering: .relaxed)
            return nil
        }
        return series(labels)
    }

    /// New series refused by `admittedSeries` since the start.
    public var refusedSeriesTotal: Int { refusedSeries.load(ordering: .relaxed) }

    // MARK: Writing

    /// The series for `labels` (which must include `__name__`), created when new.
    public func series(_ labels: Labels) -> SeriesRef {
        if let existing = index.withLock({ $0.series[labels] }) { return SeriesRef(series: existing) }
        return index.withLock { index in
            if let existing = index.series[labels] { return SeriesRef(series: existing) }
            let created = Series(labels: labels, encoding: encoding)
            index.series[labels] = created
            // Kept sorted by labels, so readers never sort.
            var siblings = index.byName[labels.name ?? ""] ?? []
            var low = 0, high = siblings.count
            while low < high {
                let middle = (low + high) / 2
                if siblings[middle].labels < labels { low = middle + 1 } else { high = middle }
            }
            siblings.insert(created, at: low)
            index.byName[labels.name ?? ""] = siblings
            generation.add(1, ordering: .releasing)
            return SeriesRef(series: created)
        }
    }

    /// Appends one sample. Out-of-order samples are rejected (and counted), as in Prometheus.
    @discardableResult
    public func append(_ ref: SeriesRef, _ timestamp: Timestamp, _ value: Double) -> Bool {
        let result = ref.series.data.withLock { $0.append(timestamp, value) }
        switch result {
        case .appended:
            return true
        case .duplicate:
            return true
        case .outOfOrder:
            rejectedTotal.add(1, ordering: .relaxed)
            return false
        }
    }

    @discardableResult
    public func append(_ labels: Labels, _ timestamp: Timestamp, _ value: Double) -> Bool {
        append(series(labels), timestamp, value)
    }

    /// Records the type and help text of a metric family.
    public func describe(_ name: String, kind: MetricKind, help: String) {
        index.withLock { index in
            let metadata = MetricMetadata(kind: kind, help: help)
            if index.metadata[name] != metadata { index.metadata[name] = metadata }
        }
    }

    public func metadata(_ name: String) -> MetricMetadata? {
        index.withLock { $0.metadata[name] }
    }

    // MARK: Reading

    /// Changes whenever a series is created or removed; a caller's cached `select` result is current
    /// while this is unchanged.
    public var seriesGeneration: Int { generation.load(ordering: .acquiring) }

    /// Series matching `selector`. Selections are cached until a series is created or removed, so
    /// a rule asking the same question every few seconds does not match labels again.
    public func select(_ selector: SeriesSelector) -> [SeriesRef] {
        let current = generation.load(ordering: .acquiring)
        if let hit = selections.withLock({ $0[selector] }), hit.generation == current { return hit.refs }
        let candidates: [Series] = index.withLock { index in
            if let name = selector.metricName { return index.byName[name] ?? [] }
            return Array(index.series.values)
        }
        let refs = candidates.filter { selector.matches($0.labels) }.map { SeriesRef(series: $0) }
        selections.withLock { cache in
            if cache.count >= 4096 { cache.removeAll(keepingCapacity: true) }
            cache[selector] = Selection(generation: current, refs: refs)
        }
        return refs
    }

    /// Last value of each matching series at `time`: the newest sample within the lookback window,
    /// unless that sample is a staleness marker.
    public func instant(_ selector: SeriesSelector, at time: Timestamp) -> [VectorSample] {
        instant(select(selector), at: time)
    }

    /// `instant` over series already selected.
    public func instant(_ refs: [SeriesRef], at time: Timestamp) -> [VectorSample] {
        var out: [VectorSample] = []
        for ref in refs {
            if let value = lastValue(ref, at: time) { out.append(VectorSample(labels: ref.labels, value: value)) }
        }
        return out
    }

    /// The value an instant query sees for one series.
    public func lastValue(_ ref: SeriesRef, at time: Timestamp) -> Double? {
        ref.series.data.withLock { data -> Double? in
            if data.sampleCount == 0 { return nil }
            var found: Sample?
            if data.lastTime <= time {
                found = Sample(data.lastTime, data.lastValue)
            } else {
                var window: [Sample] = []
                data.appendSamples(after: time - lookback, through: time, into: &window)
                found = window.last
            }
            guard let sample = found, sample.timestamp > time - lookback, !StaleMarker.isStale(sample.value) else { return nil }
            return sample.value
        }
    }

    /// The newest real sample of one series at or before `time`, however old (stale markers skipped):
    /// when a series was last seen, and with what value.
    public func lastSeen(_ ref: SeriesRef, notAfter time: Timestamp) -> Sample? {
        ref.series.data.withLock { data -> Sample? in
            if data.sampleCount == 0 { return nil }
            if data.lastTime <= time && !StaleMarker.isStale(data.lastValue) { return Sample(data.lastTime, data.lastValue) }
            var window: [Sample] = []
            data.appendSamples(after: .min, through: time, into: &window, skipStale: true)
            return window.last
        }
    }

    /// Samples of one series in `(start, end]`, stale markers left out.
    public func samples(_ ref: SeriesRef, after start: Timestamp, through end: Timestamp) -> [Sample] {
        var out: [Sample] = []
        ref.series.data.withLock { data in
            data.appendSamples(after: start, through: end, into: &out, skipStale: true)
        }
        return out
    }

    /// Raw samples of every matching series in `(start, end]`.
    public func range(_ selector: SeriesSelector, after start: Timestamp, through end: Timestamp) -> [SeriesSamples] {
        select(selector).compactMap { ref in
            let samples = samples(ref, after: start, through: end)
            return samples.isEmpty ? nil : SeriesSamples(labels: ref.labels, samples: samples)
        }
    }

    /// `function(selector[range])` at `time`, one element per series that has a value. Large
    /// selections are split across `threads` cores (default: all of them).
    public func evaluate(_ function: RangeFunction, _ selector: SeriesSelector, range: Int64, at time: Timestamp,
                         threads: Int? = nil) -> [VectorSample] {
        evaluate(function, select(selector), range: range, at: time, threads: threads)
    }

    /// `evaluate` over series already selected.
    public func evaluate(_ function: RangeFunction, _ refs: [SeriesRef], range: Int64, at time: Timestamp,
                         threads: Int? = nil) -> [VectorSample] {
        let cores = max(1, threads ?? MetricStore.cores)
        let parts = refs.count >= MetricStore.parallelThreshold ? min(cores, refs.count / 1024) : 1
        if parts <= 1 { return evaluate(function, refs[...], range: range, at: time) }
        let results = Mutex([[VectorSample]](repeating: [], count: parts))
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let lower = refs.count * part / parts, upper = refs.count * (part + 1) / parts
            let partial = evaluate(function, refs[lower..<upper], range: range, at: time)
            results.withLock { $0[part] = partial }
        }
        return results.withLock { $0.flatMap { $0 } }
    }

    static let parallelThreshold = 4096
    static let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)

    private func evaluate(_ function: RangeFunction, _ refs: ArraySlice<SeriesRef>, range: Int64, at time: Timestamp) -> [VectorSample] {
        var out: [VectorSample] = []
        out.reserveCapacity(refs.count)
        var buffer: [Sample] = []
        buffer.reserveCapacity(512)
        for ref in refs {
            buffer.removeAll(keepingCapacity: true)
            ref.series.data.withLock { data in
                data.appendSamples(after: time - range, through: time, into: &buffer, skipStale: true)
            }
            if let value = function.evaluate(buffer, windowEnd: time, range: range) {
                out.append(VectorSample(labels: function.keepsName ? ref.labels : ref.labels.removingName(), value: value))
            }
        }
        return out
    }

    /// A range query: `function(selector[range])` (or the plain selector when `function` is nil)
    /// evaluated at every step from `start` to `end`.
    public func rangeQuery(_ function: RangeFunction?, _ selector: SeriesSelector, range: Int64,
                           start: Timestamp, end: Timestamp, step: Int64) -> [SeriesSamples] {
        precondition(step > 0, "step must be positive")
        var results: [Labels: [Sample]] = [:]
        var t = start
        while t <= end {
            let vector = function.map { evaluate($0, selector, range: range, at: t) } ?? instant(selector, at: t)
            for element in vector { results[element.labels, default: []].append(Sample(t, element.value)) }
            t += step
        }
        return results.map { SeriesSamples(labels: $0.key, samples: $0.value) }.sorted { $0.labels < $1.labels }
    }

    // MARK: Upkeep and figures

    /// Drops chunks older than the retention and series with no sample left in it; closes the open
    /// chunk of series that went quiet. Returns how many series were removed.
    @discardableResult
    public func compact(now: Timestamp) -> Int {
        let cutoff = now - retention
        let all = index.withLock { Array($0.series.values) }
        var dead: [Series] = []
        for series in all {
            let empty = series.data.withLock { data -> Bool in
                if data.lastTime <= cutoff {
                    appendedByRemovedSeries.add(data.appendedCount, ordering: .relaxed)
                    return true
                }
                _ = data.dropChunks(before: cutoff)
                if data.lastTime < now - lookback && data.head != nil {
                    data.seal()
                    data.arena.shrinkToFit()
                }
                return false
            }
            if empty { dead.append(series) }
        }
        guard !dead.isEmpty else { return 0 }
        let deadIDs = Set(dead.map(ObjectIdentifier.init))
        generation.add(1, ordering: .releasing)
        index.withLock { index in
            for series in dead {
                index.series[series.labels] = nil
                let name = series.labels.name ?? ""
                index.byName[name]?.removeAll { deadIDs.contains(ObjectIdentifier($0)) }
                if index.byName[name]?.isEmpty == true { index.byName[name] = nil }
            }
        }
        return dead.count
    }

    public struct Statistics: Sendable {
        public var series: Int
        public var samples: Int
        /// Bytes of compressed samples and chunk indexes.
        public var sampleBytes: Int
        /// `sampleBytes` plus series objects and label strings (an estimate).
        public var totalBytes: Int
        public var appendedTotal: Int
        public var outOfOrderTotal: Int
        public var refusedSeriesTotal = 0
        public var maxSeries = 0
    }

    public func statistics() -> Statistics {
        let all = index.withLock { Array($0.series.values) }
        var samples = 0, sampleBytes = 0, labelBytes = 0, appended = appendedByRemovedSeries.load(ordering: .relaxed)
        for series in all {
            series.data.withLock { data in
                samples += data.sampleCount
                appended += data.appendedCount
                sampleBytes += data.memoryBytes
            }
            labelBytes += series.overheadBytes
        }
        return Statistics(series: all.count, samples: samples, sampleBytes: sampleBytes,
                          totalBytes: sampleBytes + labelBytes,
                          appendedTotal: appended,
                          outOfOrderTotal: rejectedTotal.load(ordering: .relaxed),
                          refusedSeriesTotal: refusedSeriesTotal, maxSeries: maxSeries)
    }

    /// Every family with its metadata and the current value of each live series, sorted by name
    /// then labels: what `/metrics` exposes.
    public func snapshot(at time: Timestamp) -> [MetricFamily] {
        let (byName, metadata) = index.withLock { ($0.byName, $0.metadata) }
        var families: [MetricFamily] = []
        for name in byName.keys.sorted() {
            var samples: [VectorSample] = []
            for series in byName[name]! {
                if let value = lastValue(SeriesRef(series: series), at: time) {
                    samples.append(VectorSample(labels: series.labels, value: value))
                }
            }
            guard !samples.isEmpty else { continue }
            let meta = metadata[name] ?? MetricMetadata(kind: .untyped, help: "")
            families.append(MetricFamily(name: name, kind: meta.kind, help: meta.help, samples: samples))
        }
        return families
    }
}

extension MetricStore {
    /// The Prometheus text exposition (0.0.4) of every live series at `time`: what `/metrics` serves.
    /// Writes each series' cached `name{labels}` text, so a scrape only formats values.
    public func exposition(at time: Timestamp) -> String {
        let (byName, metadata) = index.withLock { ($0.byName, $0.metadata) }
        var out = ""
        out.reserveCapacity(byName.count * 200)
        for name in byName.keys.sorted() {
            var wroteHeader = false
            for series in byName[name]! {
                guard let value = lastValue(SeriesRef(series: series), at: time) else { continue }
                if !wroteHeader {
                    let meta = metadata[name] ?? MetricMetadata(kind: .untyped, help: "")
                    PrometheusExposition.appendHeader(name: name, kind: meta.kind, help: meta.help, to: &out)
                    wroteHeader = true
                }
                PrometheusExposition.appendSample(series.exposition, value, to: &out)
            }
        }
        return out
    }
}

/// A metric family: its name, type, help and samples.
public struct MetricFamily: Sendable, Hashable {
    public var name: String
    public var kind: MetricKind
    public var help: String
    public var samples: [VectorSample]

    public init(name: String, kind: MetricKind, help: String, samples: [VectorSample]) {
        self.name = name
        self.kind = kind
        self.help = help
        self.samples = samples
    }
}
