import Logging
import ServiceLifecycle
import Synchronization
import VigilCore
import VigilStore

/// Runs every collector of a registry on its own cadence and writes what they return into the store.
///
/// Samples are stamped with the scheduled tick (aligned to multiples of the interval), not with the
/// moment the read finished, so a steady 1 s series has identical timestamp deltas and compresses to
/// a bit per timestamp. A collector that throws, times out or overruns is logged and counted in
/// `vigil_collector_errors_total{collector}`; the others keep their cadence. A series a collector
/// stops reporting gets a staleness marker, so instant queries stop returning it at once; so does every
/// series of a collector whose run failed (as a failed scrape does in Prometheus) and of a collector
/// removed from the registry.
public final class CollectorScheduler: Service, Sendable {
    public let registry: CollectorRegistry
    private let store: MetricStore
    private let clock: any WallClock
    private let logger: Logger
    private let state = Mutex(State())
    /// Milliseconds between retention passes over the store.
    private let compactionInterval: Int64

    private struct State {
        var seen: [String: Set<SeriesRef>] = [:]
        /// Collectors whose refused series were logged (once each, so a churning source does not flood the log).
        var seriesLimitLogged: Set<String> = []
        var errors: [String: Int] = [:]
        var runs: [String: Int] = [:]
        /// One runner (serial queue) per registration, so a replaced collector's stuck run cannot
        /// block its successor.
        var runners: [Int: BlockingRunner] = [:]
    }

    /// Beaten per collector after each run (`collector:NAME`).
    public let liveness: Liveness?

    public init(registry: CollectorRegistry, store: MetricStore, clock: any WallClock = SystemWallClock(),
                logger: Logger, compactionInterval: Int64 = 60_000, liveness: Liveness? = nil) {
        self.liveness = liveness
        self.registry = registry
        self.store = store
        self.clock = clock
        self.logger = logger
        self.compactionInterval = compactionInterval
        store.describe("vigil_collector_duration_seconds", kind: .gauge, help: "Seconds the collector's last run took.")
        store.describe("vigil_collector_errors_total", kind: .counter,
                       help: "Collector runs that failed, timed out or were skipped because the previous run overran.")
        store.describe("vigil_collector_success", kind: .gauge, help: "1 when the collector's last run succeeded, else 0.")
    }

    /// A scheduler over a fixed set of collectors.
    public convenience init(collectors: [ScheduledCollector], store: MetricStore, clock: any WallClock = SystemWallClock(),
                            logger: Logger, compactionInterval: Int64 = 60_000, liveness: Liveness? = nil) {
        self.init(registry: CollectorRegistry(collectors), store: store, clock: clock, logger: logger,
                  compactionInterval: compactionInterval, liveness: liveness)
    }

    public var names: [String] { registry.names }

    /// Runs until cancelled or until graceful shutdown, following the registry's changes.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                let (current, changes) = self.registry.subscribe()
                for entry in current {
                    group.addTask { await self.loop(entry) }
                }
                group.addTask { await self.compactionLoop() }
                for await change in changes {
                    switch change {
                    case .added(let entry), .replaced(_, by: let entry):
                        // A replaced collector's loop ends at its next tick; the successor's first
                        // run marks stale whatever it no longer reports.
                        group.addTask { await self.loop(entry) }
                    case .removed(let entry):
                        // Its loop ends at its next tick; its series end now.
                        self.retire(entry)
                    }
                }
            }
        }
    }

    /// One run of every collector at `tick`, all at once; returns the errors by collector.
    @discardableResult
    public func collectOnce(at tick: Timestamp? = nil) async -> [String: any Error] {
        let time = tick ?? clock.now()
        return await withTaskGroup(of: (String, (any Error)?).self) { group in
            for entry in registry.entries {
                group.addTask { (entry.name, await self.runOnce(entry, at: time)) }
            }
            var failures: [String: any Error] = [:]
            for await (name, error) in group { if let error { failures[name] = error } }
            return failures
        }
    }

    /// Returns once every collector registered now has run at least once (or after `timeout`), so
    /// whoever reads the store at start (the rule evaluator) does not mistake an empty store for no data.
    public func firstRound(timeout: Duration = .seconds(10)) async {
        let names = registry.names
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline && !Task.isCancelled {
            let runs = counts().runs
            if names.allSatisfy({ (runs[$0] ?? 0) > 0 }) { return }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Runs made and errors counted so far, by collector.
    public func counts() -> (runs: [String: Int], errors: [String: Int]) {
        state.withLock { ($0.runs, $0.errors) }
    }

    private func loop(_ entry: CollectorRegistry.Entry) async {
        let interval = max(entry.scheduled.interval, 1)
        // A first run at once (stamped with the tick just passed), so a slow cadence does not mean
        // a long wait for the first sample.
        await runOnce(entry, at: clock.now() / interval * interval)
        liveness?.beat("collector:\(entry.name)", every: interval)
        while !Task.isCancelled && registry.isCurrent(entry) {
            let now = clock.now()
            let tick = (now / interval + 1) * interval
            do {
                try await Task.sleep(for: .milliseconds(tick - now))
            } catch {
                return
            }
            guard registry.isCurrent(entry) else { break }
            await runOnce(entry, at: tick)
            liveness?.beat("collector:\(entry.name)", every: interval)
        }
        state.withLock { _ = $0.runners.removeValue(forKey: entry.id) }
    }

    /// Marks every series of a removed collector stale, so queries stop returning it at once.
    private func retire(_ entry: CollectorRegistry.Entry) {
        liveness?.forget("collector:\(entry.name)")
        let vanished = state.withLock { $0.seen.removeValue(forKey: entry.name) ?? [] }
        let now = clock.now()
        for ref in vanished { store.append(ref, now, StaleMarker.value) }
        logger.info("collector removed", metadata: ["collector.name": "\(entry.name)", "collector.series": "\(vanished.count)"])
    }

    private func compactionLoop() async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: .milliseconds(compactionInterval))
            } catch {
                return
            }
            let removed = store.compact(now: clock.now())
            if removed > 0 { logger.debug("retention removed series", metadata: ["store.series_removed": "\(removed)"]) }
        }
    }

    /// One run of one collector, stamped `tick`. Returns the error, if any.
    @discardableResult
    func runOnce(_ entry: CollectorRegistry.Entry, at tick: Timestamp) async -> (any Error)? {
        let started = ContinuousClock.now
        let collector = entry.scheduled.collector
        let runner = state.withLock { state in
            if let existing = state.runners[entry.id] { return existing }
            let created = BlockingRunner(label: entry.name)
            state.runners[entry.id] = created
            return created
        }
        var batch: SampleBatch?
        var failure: (any Error)?
        do {
            batch = try await runner.run(timeout: entry.scheduled.timeout) { try collector.collect() }
        } catch {
            failure = error
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        // A run that finishes after its collector was removed or replaced writes nothing.
        guard registry.isCurrent(entry) else { return failure }
        if let batch {
            write(batch, from: entry.name, at: tick)
        } else {
            // As Prometheus does for a failed scrape: the collector's series end now, rather than
            // serving their last values for the whole lookback as if nothing were wrong.
            write(SampleBatch(), from: entry.name, at: tick)
        }
        let errors = state.withLock { state -> Int in
            state.runs[entry.name, default: 0] += 1
            if failure != nil { state.errors[entry.name, default: 0] += 1 }
            return state.errors[entry.name, default: 0]
        }
        if let failure {
            logger.warning("collector failed", metadata: [
                "collector.name": "\(entry.name)", "collector.error": "\(failure)", "collector.errors_total": "\(errors)",
            ])
        }
        let labels = ["collector": entry.name]
        store.append(Labels(name: "vigil_collector_errors_total", labels), tick, Double(errors))
        store.append(Labels(name: "vigil_collector_success", labels), tick, failure == nil ? 1 : 0)
        store.append(Labels(name: "vigil_collector_duration_seconds", labels), tick, seconds)
        return failure
    }

    private func write(_ batch: SampleBatch, from collector: String, at tick: Timestamp) {
        for (name, metadata) in batch.families {
            store.describe(name, kind: metadata.kind, help: metadata.help)
        }
        var seen = Set<SeriesRef>()
        seen.reserveCapacity(batch.count)
        var refused = 0
        for entry in batch.entries {
            guard let ref = store.admittedSeries(entry.labels) else {
                refused += 1
                continue
            }
            store.append(ref, tick, entry.value)
            seen.insert(ref)
        }
        if refused > 0 {
            let first = state.withLock { state in state.seriesLimitLogged.insert(collector).inserted }
            if first {
                logger.error("the metrics store is full: new series are refused (existing ones keep their samples); raise store.max_series or stop the source", metadata: [
                    "collector.name": "\(collector)", "store.max_series": "\(store.maxSeries)", "series.refused": "\(refused)",
                ])
            }
        }
        let vanished = state.withLock { state -> [SeriesRef] in
            let previous = state.seen[collector] ?? []
            state.seen[collector] = seen
            return previous.subtracting(seen).map { $0 }
        }
        for ref in vanished { store.append(ref, tick, StaleMarker.value) }
    }
}
