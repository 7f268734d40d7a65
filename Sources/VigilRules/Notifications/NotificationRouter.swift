import Foundation
import Logging
import Synchronization
import VigilCore
import VigilStore

/// Vigil's built-in Alertmanager: takes each rule's current alerts, mutes silenced and inhibited ones,
/// groups the rest per receiver (`group_by`), and sends a notification after `group_wait`, then at most
/// every `group_interval` when the group changed, and every `repeat_interval` while it keeps firing.
/// Delivery is the receivers' business (their own tasks), so `tick` never waits on the network.
public final class NotificationRouter: Sendable {
    public struct Settings: Sendable {
        public var groupBy: [String]
        public var groupWait: Int64
        public var groupInterval: Int64
        public var repeatInterval: Int64
        public var externalURL: String

        public init(_ configuration: AlertingConfiguration, externalURL: String) {
            groupBy = configuration.groupBy
            groupWait = configuration.groupWaitMilliseconds
            groupInterval = configuration.groupIntervalMilliseconds
            // Alertmanager rounds the repeat interval up to a multiple of the group interval.
            let interval = max(configuration.groupIntervalMilliseconds, 1)
            repeatInterval = (configuration.repeatIntervalMilliseconds + interval - 1) / interval * interval
            self.externalURL = externalURL
        }
    }

    private struct Group {
        var receiver: Int
        var labels: [String: String]
        var alerts: [String: Alert] = [:]
        var nextFlush: Timestamp
        var notifiedFiring: Set<String> = []
        var lastNotified: Timestamp?
    }

    private struct State {
        var byRule: [String: [Alert]] = [:]
        var groups: [String: Group] = [:]
        var silences: [ActiveSilence] = []
    }

    public let settings: Settings
    public let receivers: [ReceiverWorker]
    private let matchers: [SeriesSelector?]
    private let inhibitRules: [InhibitRule]
    private let state = Mutex(State())

    public init(settings: Settings, receivers: [ReceiverWorker], inhibitRules: [InhibitRule]) throws {
        self.settings = settings
        self.receivers = receivers
        self.inhibitRules = inhibitRules
        matchers = try receivers.map { worker in try worker.configuration.match.map { try Silences.parseMatchers($0) } }
    }

    /// Replaces the silences in force (the daemon re-reads them from the database every second).
    public func setSilences(_ silences: [ActiveSilence]) {
        state.withLock { $0.silences = silences }
    }

    /// The rule's current alerts (firing and recently resolved), as the engine publishes them.
    public func update(rule: String, alerts: [Alert], at now: Timestamp) {
        state.withLock { state in
            let previous = state.byRule[rule] ?? []
            state.byRule[rule] = alerts
            let current = Set(alerts.map(\.fingerprint))
            for alert in alerts { route(alert, into: &state, at: now) }
            // Alerts the rule no longer reports (forgotten after their retention) leave their groups.
            for gone in previous where !current.contains(gone.fingerprint) {
                for key in state.groups.keys { state.groups[key]?.alerts[gone.fingerprint] = nil }
            }
        }
    }

    private func route(_ alert: Alert, into state: inout State, at now: Timestamp) {
        for (index, worker) in receivers.enumerated() {
            if let matcher = matchers[index], !matcher.matches(Labels(dictionary: alert.labels)) { continue }
            let groupLabels = settings.groupBy == ["..."] ? alert.labels : alert.labels.filter { settings.groupBy.contains($0.key) }
            let key = "\(worker.configuration.name):" + Self.groupKey(groupLabels)
            if state.groups[key] == nil {
                // A new group waits for group_wait; a resolved alert alone does not open one.
                guard alert.status == .firing else { continue }
                state.groups[key] = Group(receiver: index, labels: groupLabels, nextFlush: now + settings.groupWait)
            }
            state.groups[key]!.alerts[alert.fingerprint] = alert
        }
    }

    static func groupKey(_ labels: [String: String]) -> String {
        "{}:{" + labels.keys.sorted().map { "\($0)=\"\(Labels.escape(labels[$0]!))\"" }.joined(separator: ",") + "}"
    }

    /// Silence ids muting these labels now, and whether an inhibit rule mutes them.
    public func muting(_ labels: [String: String], at now: Timestamp) -> (silencedBy: [String], inhibited: Bool) {
        state.withLock { state in
            let silenced = state.silences.filter { $0.matches(labels, at: now) }.map(\.record.id)
            return (silenced, inhibited(labels, state))
        }
    }

    private func inhibited(_ labels: [String: String], _ state: State) -> Bool {
        guard !inhibitRules.isEmpty else { return false }
        let sources = state.byRule.values.joined().filter { $0.status == .firing }.map(\.labels)
        return inhibitRules.contains { $0.inhibits(labels, sources: sources) }
    }

    /// Sends the notifications that are due at `now`; returns them (tests read them).
    @discardableResult
    public func tick(at now: Timestamp) -> [Notification] {
        var out: [Notification] = []
        state.withLock { state in
            for key in state.groups.keys.sorted() {
                guard var group = state.groups[key], now >= group.nextFlush else { continue }
                let worker = receivers[group.receiver]
                let active = group.alerts.values.filter { alert in
                    !state.silences.contains { $0.matches(alert.labels, at: now) } && !inhibited(alert.labels, state)
                }
                let firing = active.filter { $0.status == .firing }
                let firingKeys = Set(firing.map(\.fingerprint))
                let resolved = active.filter { $0.status == .resolved && group.notifiedFiring.contains($0.fingerprint) }
                var send = !firing.isEmpty && firingKeys != group.notifiedFiring
                if worker.configuration.sendResolved && !resolved.isEmpty { send = true }
                if !firing.isEmpty, let last = group.lastNotified, now - last >= settings.repeatInterval { send = true }
                if send {
                    let alerts = (firing + (worker.configuration.sendResolved ? resolved : []))
                        .sorted { $0.startsAt == $1.startsAt ? $0.fingerprint < $1.fingerprint : $0.startsAt < $1.startsAt }
                    let notification = Notification(receiver: worker.configuration.name, groupKey: Self.groupKey(group.labels),
                                                    groupLabels: group.labels, alerts: alerts, externalURL: settings.externalURL)
                    worker.enqueue(notification)
                    out.append(notification)
                    group.lastNotified = now
                }
                if send || firing.isEmpty { group.notifiedFiring = firingKeys }
                // Resolved alerts leave the group once their notification went (or was not needed).
                for alert in group.alerts.values where alert.status == .resolved { group.alerts[alert.fingerprint] = nil }
                group.nextFlush = now + settings.groupInterval
                state.groups[key] = group.alerts.isEmpty ? nil : group
            }
        }
        return out
    }
}

/// Pushes alerts to Alertmanagers (`POST /api/v2/alerts`) as Prometheus does: firing alerts on change and
/// every `resend_delay`, with `endsAt` four resend delays ahead; resolved alerts with their real `endsAt`,
/// re-sent while the engine retains them. A failed push is retried on the next tick.
public final class AlertmanagerPusher: Sendable {
    public let urls: [String]
    private let resendDelay: Int64
    private let logger: Logger
    private struct State {
        var byRule: [String: [Alert]] = [:]
        /// Per fingerprint: when it was last pushed, and as what.
        var sent: [String: (at: Timestamp, status: Alert.Status)] = [:]
        var inFlight = false
        var failures = 0
        var retryAt: Timestamp = 0
    }
    private let state = Mutex(State())
    private let counters = Mutex<(pushes: Int, failures: Int)>((0, 0))

    public init(urls: [String], resendDelay: Int64, logger: Logger) {
        self.urls = urls.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.resendDelay = resendDelay
        self.logger = logger
    }

    public func update(rule: String, alerts: [Alert]) {
        state.withLock { $0.byRule[rule] = alerts }
    }

    public var pushes: Int { counters.withLock { $0.pushes } }
    public var failures: Int { counters.withLock { $0.failures } }

    /// Starts a push of what is due, unless one is still in flight.
    public func tick(at now: Timestamp) {
        guard !urls.isEmpty else { return }
        let due: [Alert]? = state.withLock { state in
            guard !state.inFlight, now >= state.retryAt else { return nil }
            let all = state.byRule.values.joined()
            let live = Set(all.map(\.fingerprint))
            state.sent = state.sent.filter { live.contains($0.key) }
            let due = all.filter { alert in
                guard let last = state.sent[alert.fingerprint] else { return true }
                return last.status != alert.status || now - last.at >= resendDelay
            }
            if due.isEmpty { return nil }
            state.inFlight = true
            return Array(due)
        }
        guard let due else { return }
        let body = payload(due, now: now)
        Task.detached { [self] in
            var ok = true
            for url in urls {
                do {
                    try await HTTPPost.send(url: url + "/api/v2/alerts", body: body, timeout: 10_000)
                } catch {
                    ok = false
                    logger.warning("cannot push alerts to Alertmanager", metadata: ["url": "\(url)", "error": "\(error)"])
                }
            }
            counters.withLock { ok ? ($0.pushes += 1) : ($0.failures += 1) }
            state.withLock { state in
                state.inFlight = false
                if ok {
                    state.failures = 0
                    for alert in due { state.sent[alert.fingerprint] = (now, alert.status) }
                } else {
                    state.failures += 1
                    state.retryAt = now + min(1000 << min(state.failures, 6), 60_000)
                }
            }
        }
    }

    func payload(_ alerts: [Alert], now: Timestamp) -> Data {
        struct Item: Encodable {
            var labels: [String: String]
            var annotations: [String: String]
            var startsAt: String
            var endsAt: String
            var generatorURL: String
        }
        let items = alerts.map { alert in
            Item(labels: alert.labels, annotations: alert.annotations, startsAt: RFC3339.string(alert.startsAt),
                 endsAt: RFC3339.string(alert.endsAt ?? now + 4 * resendDelay), generatorURL: alert.generatorURL)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? encoder.encode(items)) ?? Data("[]".utf8)
    }
}
