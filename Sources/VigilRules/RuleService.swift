import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import VigilCore
import VigilLua
import VigilState
import VigilStore

/// The rule evaluator as a daemon service: evaluates due rules every 250 ms on a serial queue of its own,
/// notices changed rule files within half a second (at once on `reload()`, which SIGHUP calls), feeds the
/// notification router and the Alertmanager pusher, and re-reads silences from the database every second.
public final class RuleService: Service, Sendable {
    public struct Snapshot: Sendable, Codable {
        public var rules: [RuleStatus] = []
        public var files: [RuleFileStatus] = []
        public var alerts: [AlertView] = []
        /// Active recommendations, most valuable first.
        public var recommendations: [Recommendation] = []

        public init(rules: [RuleStatus] = [], files: [RuleFileStatus] = [], alerts: [AlertView] = [], recommendations: [Recommendation] = []) {
            self.rules = rules
            self.files = files
            self.alerts = alerts
            self.recommendations = recommendations
        }
    }

    private let engine: UncheckedBox<RuleEngine>
    public let router: NotificationRouter
    public let pusher: AlertmanagerPusher
    private let database: StateDatabase?
    private let clock: any WallClock
    private let logger: Logger
    private let queue = DispatchQueue(label: "vigil.rules")
    private let snapshotState = Mutex(Snapshot())
    private let reloadRequested = Atomic<Bool>(false)
    private let tickInterval: Int64 = 250
    /// Alert history and expired recommendations older than this are deleted (checked hourly). 30 days.
    private let historyRetention: Int64 = 30 * 86_400_000
    private let reloadInterval: Int64
    private let startAfter: (@Sendable () async -> Void)?
    private let liveness: Liveness?

    /// `startAfter` is awaited before the first evaluation (the daemon waits for the collectors' first round).
    public init(engine: RuleEngine, router: NotificationRouter, pusher: AlertmanagerPusher, database: StateDatabase?,
                clock: any WallClock, watchInterval: Int64 = 500, startAfter: (@Sendable () async -> Void)? = nil, logger: Logger,
                liveness: Liveness? = nil) {
        self.liveness = liveness
        reloadInterval = watchInterval
        self.startAfter = startAfter
        self.engine = UncheckedBox(engine)
        self.router = router
        self.pusher = pusher
        self.database = database
        self.clock = clock
        self.logger = logger
        engine.onAlerts = { [router, pusher, clock] rule, alerts in
            router.update(rule: rule, alerts: alerts, at: clock.now())
            pusher.update(rule: rule, alerts: alerts)
        }
    }

    /// The latest rules, files and alerts (with silences and inhibition applied), as of the last tick.
    public var snapshot: Snapshot { snapshotState.withLock { $0 } }

    /// Every declared indicator for `tasks` and the host, computed on the evaluator's queue.
    public func indicators(tasks: [TaskFacts], gpus: [GPUFacts]) -> IndicatorReport {
        queue.sync { engine.value.indicators(tasks: tasks, gpus: gpus, at: clock.now()) }
    }

    /// Recommendations that expired at or after `since`, newest first, from the database.
    public func expiredRecommendations(since: Timestamp) throws -> [Recommendation] {
        guard let database else { return [] }
        return try database.recommendations(expiredSince: since).filter { $0.expiredAt != nil }
            .compactMap { try? JSONDecoder().decode(Recommendation.self, from: Data($0.record.utf8)) }
            .sorted { ($0.expiredAt ?? 0) > ($1.expiredAt ?? 0) }
    }

    /// Asks for a reload at the next tick (SIGHUP).
    public func reload() { reloadRequested.store(true, ordering: .releasing) }

    public func run() async throws {
        await startAfter?()
        await cancelWhenGracefulShutdown {
            var lastReload: Timestamp?
            var lastSilences: Timestamp?
            var lastPrune: Timestamp?
            while !Task.isCancelled {
                let now = self.clock.now()
                let forced = self.reloadRequested.exchange(false, ordering: .acquiringAndReleasing)
                let reload = forced || lastReload.map { now - $0 >= self.reloadInterval } ?? true
                if reload { lastReload = now }
                let silences = lastSilences.map { now - $0 >= 1000 } ?? true
                if silences { lastSilences = now }
                if lastPrune.map({ now - $0 >= 3_600_000 }) ?? true {
                    lastPrune = now
                    self.prune(before: now - self.historyRetention)
                }
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    self.queue.async {
                        self.step(at: now, reload: reload, forced: forced, silences: silences)
                        continuation.resume()
                    }
                }
                self.liveness?.beat("rules", every: self.tickInterval)
                try? await Task.sleep(for: .milliseconds(self.tickInterval))
            }
        }
        queue.sync { engine.value.flush() }
        logger.info("rule evaluator stopped")
    }

    /// Deletes alert history, and recommendations that expired, older than `cutoff`, off the evaluator's queue.
    private func prune(before cutoff: Timestamp) {
        guard let database else { return }
        let logger = logger
        DispatchQueue.global(qos: .utility).async {
            for (what, delete) in [("old alert history", database.pruneHistory), ("old expired recommendations", database.pruneRecommendations)] {
                do {
                    let removed = try delete(cutoff)
                    if removed > 0 { logger.info("\(what) deleted", metadata: ["rows": "\(removed)"]) }
                } catch {
                    logger.error("cannot delete \(what)", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// One tick: reload when asked, evaluate, route, push, refresh the snapshot.
    func step(at now: Timestamp, reload: Bool, forced: Bool, silences: Bool) {
        let engine = engine.value
        if silences, let database {
            do {
                router.setSilences(try database.silences(activeAt: now).compactMap { record in
                    do { return try ActiveSilence(record) } catch {
                        logger.warning("silence ignored", metadata: ["silence": "\(record.id)", "error": "\(error)"])
                        return nil
                    }
                })
            } catch {
                logger.error("cannot read silences", metadata: ["error": "\(error)"])
            }
        }
        if reload {
            let report = engine.reload(at: now, force: forced)
            if forced { logger.info("rules reloaded on request", metadata: ["changed": "\(report.loaded.count + report.removed.count)", "failed": "\(report.failed.count)"]) }
        }
        engine.tick(at: now)
        router.tick(at: now)
        pusher.tick(at: now)
        // Once a second is enough for the delivery counters.
        if silences { exportNotificationMetrics(at: now) }
        var snapshot = Snapshot(rules: engine.rules, files: engine.fileStatuses, alerts: engine.alerts,
                                recommendations: engine.recommendations)
        for index in snapshot.alerts.indices {
            let muting = router.muting(snapshot.alerts[index].labels, at: now)
            snapshot.alerts[index].silencedBy = muting.silencedBy
            snapshot.alerts[index].inhibited = muting.inhibited
        }
        snapshotState.withLock { $0 = snapshot }
    }

    private func exportNotificationMetrics(at now: Timestamp) {
        let store = engine.value.store
        for worker in router.receivers {
            store.append(Labels(name: "vigil_notifications_total", ["receiver": worker.configuration.name]), now, Double(worker.sent))
            store.append(Labels(name: "vigil_notifications_failed_total", ["receiver": worker.configuration.name]), now, Double(worker.failed))
        }
        if !pusher.urls.isEmpty {
            store.append(Labels(name: "vigil_alertmanager_pushes_total"), now, Double(pusher.pushes))
            store.append(Labels(name: "vigil_alertmanager_push_failures_total"), now, Double(pusher.failures))
        }
    }

    /// Builds the whole alerting side from the configuration.
    public static func make(configuration: VigilConfiguration, store: MetricStore, clock: any WallClock,
                            history: (any HistorySource)? = nil,
                            startAfter: (@Sendable () async -> Void)? = nil, logger: Logger,
                            liveness: Liveness? = nil) throws -> RuleService {
        let database = try StateDatabase(dataDirectory: configuration.dataDirectory)
        let externalURL = configuration.alerting.externalURL ?? "http://\(configuration.listen)"
        var options = RuleEngineOptions(rulesDirectory: configuration.rulesDirectory)
        options.defaultInterval = configuration.rules.defaultIntervalMilliseconds
        options.quarantineAfter = configuration.rules.quarantineAfter
        options.resolvedRetention = configuration.rules.resolvedRetentionMilliseconds
        options.limits = LuaLimits(configuration.lua)
        options.externalURL = externalURL
        options.querySources = configuration.querySources
        let engine = RuleEngine(store: store, options: options, database: database, history: history, logger: logger)
        let receivers = configuration.alerting.receivers.map { ReceiverWorker($0, logger: logger) }
        let router = try NotificationRouter(settings: .init(configuration.alerting, externalURL: externalURL),
                                            receivers: receivers,
                                            inhibitRules: configuration.alerting.inhibitRules.map(InhibitRule.init))
        let pusher = AlertmanagerPusher(urls: configuration.alerting.alertmanagers,
                                        resendDelay: configuration.alerting.resendDelayMilliseconds, logger: logger)
        store.describe("vigil_notifications_total", kind: .counter, help: "Notifications delivered, per receiver.")
        store.describe("vigil_notifications_failed_total", kind: .counter, help: "Notifications given up after retries, per receiver.")
        store.describe("vigil_alertmanager_pushes_total", kind: .counter, help: "Successful pushes to the Alertmanagers.")
        store.describe("vigil_alertmanager_push_failures_total", kind: .counter, help: "Failed pushes to the Alertmanagers.")
        return RuleService(engine: engine, router: router, pusher: pusher, database: database, clock: clock,
                           watchInterval: configuration.rules.watchIntervalMilliseconds, startAfter: startAfter, logger: logger,
                           liveness: liveness)
    }
}

/// Holds a non-Sendable value that one serial queue owns.
final class UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
