import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Synchronization
import VigilCollectors
import VigilCore

/// One notification: a group's alerts for one receiver.
public struct Notification: Sendable {
    public var receiver: String
    public var groupKey: String
    public var groupLabels: [String: String]
    public var alerts: [Alert]
    public var externalURL: String

    public var status: Alert.Status { alerts.contains { $0.status == .firing } ? .firing : .resolved }

    /// Alertmanager's webhook payload, version 4.
    public func webhookPayload() -> Data {
        func common(_ pick: (Alert) -> [String: String]) -> [String: String] {
            guard var result = alerts.first.map(pick) else { return [:] }
            for alert in alerts.dropFirst() {
                let other = pick(alert)
                result = result.filter { other[$0.key] == $0.value }
            }
            return result
        }
        let payload = WebhookPayload(
            version: "4", groupKey: groupKey, truncatedAlerts: 0, status: status.rawValue, receiver: receiver,
            groupLabels: groupLabels, commonLabels: common(\.labels), commonAnnotations: common(\.annotations),
            externalURL: externalURL,
            alerts: alerts.map { alert in
                WebhookPayload.Item(status: alert.status.rawValue, labels: alert.labels, annotations: alert.annotations,
                                    startsAt: RFC3339.string(alert.startsAt),
                                    endsAt: alert.endsAt.map(RFC3339.string) ?? "0001-01-01T00:00:00Z",
                                    generatorURL: alert.generatorURL, fingerprint: alert.fingerprint)
            })
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? encoder.encode(payload)) ?? Data()
    }

    struct WebhookPayload: Encodable {
        struct Item: Encodable {
            var status: String
            var labels: [String: String]
            var annotations: [String: String]
            var startsAt: String
            var endsAt: String
            var generatorURL: String
            var fingerprint: String
        }

        var version: String
        var groupKey: String
        var truncatedAlerts: Int
        var status: String
        var receiver: String
        var groupLabels: [String: String]
        var commonLabels: [String: String]
        var commonAnnotations: [String: String]
        var externalURL: String
        var alerts: [Item]
    }
}

/// Delivers notifications for one receiver on a task of its own, retrying with backoff, so a slow or
/// failing receiver never delays rule evaluation. The queue is bounded; when full the oldest waits are dropped.
public final class ReceiverWorker: Sendable {
    public let configuration: ReceiverConfiguration
    private let continuation: AsyncStream<Notification>.Continuation
    private final class Counters: Sendable {
        let sent = Atomic<Int>(0)
        let failed = Atomic<Int>(0)
        let dropped = Atomic<Int>(0)
    }
    private let counters = Counters()
    /// Attempts per notification, and the first backoff (doubling).
    static let attempts = 5
    static let firstBackoff: Duration = .seconds(1)

    public init(_ configuration: ReceiverConfiguration, logger: Logger) {
        self.configuration = configuration
        let (stream, continuation) = AsyncStream<Notification>.makeStream(bufferingPolicy: .bufferingNewest(1000))
        self.continuation = continuation
        let counters = counters
        Task.detached {
            for await notification in stream {
                var backoff = Self.firstBackoff
                for attempt in 1...Self.attempts {
                    do {
                        try await Self.deliver(notification, configuration, logger: logger)
                        counters.sent.add(1, ordering: .relaxed)
                        break
                    } catch {
                        logger.warning("notification failed", metadata: [
                            "receiver": "\(configuration.name)", "attempt": "\(attempt)/\(Self.attempts)", "error": "\(error)",
                        ])
                        if attempt == Self.attempts {
                            counters.failed.add(1, ordering: .relaxed)
                            logger.error("notification dropped after retries", metadata: ["receiver": "\(configuration.name)", "group": "\(notification.groupKey)"])
                        } else {
                            try? await Task.sleep(for: backoff)
                            backoff *= 2
                        }
                    }
                }
            }
        }
    }

    deinit { continuation.finish() }

    public func enqueue(_ notification: Notification) {
        if case .dropped = continuation.yield(notification) { counters.dropped.add(1, ordering: .relaxed) }
    }

    public var sent: Int { counters.sent.load(ordering: .relaxed) }
    public var failed: Int { counters.failed.load(ordering: .relaxed) }
    public var dropped: Int { counters.dropped.load(ordering: .relaxed) }

    static func deliver(_ notification: Notification, _ configuration: ReceiverConfiguration, logger: Logger) async throws {
        switch configuration.kind {
        case .log:
            let level: Logger.Level = notification.status == .firing ? .warning : .info
            for alert in notification.alerts {
                var metadata: Logger.Metadata = ["receiver": "\(configuration.name)", "alertname": "\(alert.name)",
                                                 "status": "\(alert.status.rawValue)", "labels": "\(Labels(dictionary: alert.labels))"]
                if let summary = alert.annotations["summary"] { metadata["summary"] = "\(summary)" }
                logger.log(level: level, "alert notification", metadata: metadata)
            }
        case .webhook(let url):
            try await HTTPPost.send(url: url, body: notification.webhookPayload(), timeout: configuration.timeoutMilliseconds,
                                    headers: ["User-Agent": "Vigil"])
        case .command(let argv):
            let payload = [UInt8](notification.webhookPayload())
            let timeout = configuration.timeoutMilliseconds
            let outcome = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ChildProcess.Outcome, any Error>) in
                DispatchQueue.global().async {
                    continuation.resume(with: Result { try ChildProcess.run(argv, input: payload, timeout: timeout, outputLimit: 65536) })
                }
            }
            if let failure = outcome.failure(timeout: timeout, limit: 65536) {
                throw VigilError(.unavailable, "\(argv.joined(separator: " ")) \(failure)")
            }
        }
    }
}

/// JSON POSTs with a deadline; a status other than 2xx is an error that quotes the reply.
enum HTTPPost {
    static func send(url: String, body: Data, timeout: Int64, headers: [String: String] = [:]) async throws {
        guard let target = URL(string: url) else { throw VigilError(.invalidConfiguration, "\(url) is not a URL") }
        var request = URLRequest(url: target)
        request.httpMethod = "POST"
        request.httpBody = body
        request.timeoutInterval = Double(timeout) / 1000
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await URLSession.shared.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw VigilError(.unavailable, "\(url): no HTTP response") }
        guard (200..<300).contains(http.statusCode) else {
            let text = String(decoding: data.prefix(300), as: UTF8.self)
            throw VigilError(.unavailable, "\(url) answered \(http.statusCode): \(text)")
        }
    }
}
