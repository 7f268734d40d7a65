import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Synchronization
import Testing
import VigilCore
import VigilRules
import VigilState
import VigilStore

/// What the receiving end got, request by request.
private final class Inbox: Sendable {
    let raw = Mutex<[(path: String, body: Data)]>([])
    let failuresLeft = Atomic<Int>(0)

    var count: Int { raw.withLock { $0.count } }

    /// The bodies received so far (a JSON array arrives as `["alerts": array]`), once there are `count`.
    func waitFor(_ count: Int, timeout: Duration = .seconds(20)) async -> [(path: String, body: [String: Any])] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline && self.count < count {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return raw.withLock { $0 }.map { item in
            let object = try? JSONSerialization.jsonObject(with: item.body)
            return (item.path, (object as? [String: Any]) ?? ["alerts": object as? [[String: Any]] ?? []])
        }
    }
}

private func receiverApp(_ inbox: Inbox) -> some ApplicationProtocol {
    let router = Router()
    router.post("/hook") { request, _ -> Response in
        let buffer = try await request.body.collect(upTo: 1 << 20)
        // The first requests fail when asked to: the worker must retry.
        if inbox.failuresLeft.load(ordering: .relaxed) > 0 {
            inbox.failuresLeft.subtract(1, ordering: .relaxed)
            return Response(status: .serviceUnavailable)
        }
        inbox.raw.withLock { $0.append(("/hook", Data(buffer.readableBytesView))) }
        return Response(status: .ok)
    }
    router.post("/api/v2/alerts") { request, _ -> Response in
        let buffer = try await request.body.collect(upTo: 1 << 20)
        inbox.raw.withLock { $0.append(("/api/v2/alerts", Data(buffer.readableBytesView))) }
        return Response(status: .ok)
    }
    return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
}

private func alert(_ name: String, _ labels: [String: String], status: Alert.Status = .firing, endsAt: Timestamp? = nil) -> Alert {
    var all = labels
    all["alertname"] = name
    return Alert(rule: name, status: status, labels: all, annotations: ["summary": "\(name) summary"], startsAt: 1_000,
                 endsAt: endsAt, value: 1, generatorURL: "http://127.0.0.1:9477/rules/\(name)")
}

@Suite("notifications over real sockets")
struct NotificationDeliveryTests {
    @Test("webhook: Alertmanager's version 4 payload, retried after a failure")
    func webhook() async throws {
        let inbox = Inbox()
        inbox.failuresLeft.store(1, ordering: .relaxed)
        try await receiverApp(inbox).test(.live) { client in
            let port = try #require(client.port)
            var configuration = AlertingConfiguration()
            configuration.groupWaitMilliseconds = 0
            let worker = ReceiverWorker(ReceiverConfiguration(name: "hook", kind: .webhook(url: "http://127.0.0.1:\(port)/hook")),
                                        logger: Logger(label: "test"))
            let router = try NotificationRouter(settings: .init(configuration, externalURL: "http://vigil.example:9477"),
                                                receivers: [worker], inhibitRules: [])
            router.update(rule: "GpuTooHot", alerts: [alert("GpuTooHot", ["gpu": "0", "severity": "warning"])], at: 5_000)
            #expect(router.tick(at: 5_000).count == 1)
            let got = await inbox.waitFor(1)
            let body = try #require(got.first?.body)
            #expect(body["version"] as? String == "4")
            #expect(body["status"] as? String == "firing")
            #expect(body["receiver"] as? String == "hook")
            #expect(body["groupKey"] as? String == #"{}:{alertname="GpuTooHot"}"#)
            #expect(body["externalURL"] as? String == "http://vigil.example:9477")
            #expect((body["groupLabels"] as? [String: String]) == ["alertname": "GpuTooHot"])
            #expect((body["commonLabels"] as? [String: String]) == ["alertname": "GpuTooHot", "gpu": "0", "severity": "warning"])
            let first = try #require((body["alerts"] as? [[String: Any]])?.first)
            #expect(first["endsAt"] as? String == "0001-01-01T00:00:00Z")
            #expect(first["startsAt"] as? String == "1970-01-01T00:00:01.000Z")
            #expect((first["fingerprint"] as? String)?.count == 16)
            // The receiver answered; the worker counts the delivery once the reply is in.
            let deadline = ContinuousClock.now + .seconds(10)
            while worker.sent == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(worker.sent == 1)
        }
    }

    @Test("a receiver that never answers delays neither the router nor the other receivers")
    func hungReceiver() async throws {
        // A socket that listens but never accepts: connections complete in the kernel, replies never come.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        listen(fd, 16)
        let hungPort = Int(UInt16(bigEndian: address.sin_port))

        let inbox = Inbox()
        try await receiverApp(inbox).test(.live) { client in
            let port = try #require(client.port)
            var hung = ReceiverConfiguration(name: "hung", kind: .webhook(url: "http://127.0.0.1:\(hungPort)/hook"))
            hung.timeoutMilliseconds = 60_000
            let hungWorker = ReceiverWorker(hung, logger: Logger(label: "test"))
            let goodWorker = ReceiverWorker(ReceiverConfiguration(name: "good", kind: .webhook(url: "http://127.0.0.1:\(port)/hook")),
                                            logger: Logger(label: "test"))
            var configuration = AlertingConfiguration()
            configuration.groupWaitMilliseconds = 0
            let router = try NotificationRouter(settings: .init(configuration, externalURL: "x"), receivers: [hungWorker, goodWorker],
                                                inhibitRules: [])
            router.update(rule: "A", alerts: [alert("A", ["gpu": "0"])], at: 0)
            let started = ContinuousClock.now
            #expect(router.tick(at: 0).count == 2)
            #expect(ContinuousClock.now - started < .seconds(1), "tick only hands notifications over")
            let got = await inbox.waitFor(1)
            #expect(got.count == 1, "the good receiver got its notification while the other hangs")
            #expect(hungWorker.sent == 0)
        }
    }

    @Test("command: the payload on standard input")
    func command() async throws {
        let folder = NSTemporaryDirectory() + "vigil-cmd-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let worker = ReceiverWorker(ReceiverConfiguration(name: "cmd", kind: .command(["/bin/sh", "-c", "cat > \(folder)/got.json"])),
                                    logger: Logger(label: "test"))
        var configuration = AlertingConfiguration()
        configuration.groupWaitMilliseconds = 0
        let router = try NotificationRouter(settings: .init(configuration, externalURL: "x"), receivers: [worker],
                                            inhibitRules: [])
        router.update(rule: "A", alerts: [alert("A", ["gpu": "1"])], at: 0)
        router.tick(at: 0)
        let deadline = ContinuousClock.now + .seconds(20)
        while worker.sent == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/got.json"))
        let body = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(((body["alerts"] as? [[String: Any]])?.first?["labels"] as? [String: String])?["gpu"] == "1")
    }

    @Test("Alertmanager push: firing with endsAt ahead, re-sent after the resend delay, resolved with its end")
    func alertmanagerPush() async throws {
        let inbox = Inbox()
        try await receiverApp(inbox).test(.live) { client in
            let port = try #require(client.port)
            let pusher = AlertmanagerPusher(urls: ["http://127.0.0.1:\(port)"], resendDelay: 60_000, logger: Logger(label: "test"))
            pusher.update(rule: "A", alerts: [alert("A", ["gpu": "0"])])
            pusher.tick(at: 10_000)
            var got = await inbox.waitFor(1)
            var sent = try #require((got.last?.body["alerts"] as? [[String: Any]])?.first)
            #expect(sent["endsAt"] as? String == "1970-01-01T00:04:10.000Z", "now + 4 × resend delay")
            // Not due again before the resend delay; due after it.
            try await Task.sleep(for: .milliseconds(100))
            pusher.tick(at: 20_000)
            try await Task.sleep(for: .milliseconds(200))
            #expect(inbox.count == 1)
            pusher.tick(at: 71_000)
            got = await inbox.waitFor(2)
            #expect(got.count == 2)
            try await Task.sleep(for: .milliseconds(100))
            pusher.update(rule: "A", alerts: [alert("A", ["gpu": "0"], status: .resolved, endsAt: 75_000)])
            pusher.tick(at: 76_000)
            got = await inbox.waitFor(3)
            sent = try #require((got.last?.body["alerts"] as? [[String: Any]])?.first)
            #expect(sent["endsAt"] as? String == "1970-01-01T00:01:15.000Z")
        }
    }
}

@Suite("notification routing")
struct NotificationRoutingTests {
    private func router(_ configure: (inout AlertingConfiguration) -> Void = { _ in },
                        inhibit: [InhibitRuleConfiguration] = []) throws -> NotificationRouter {
        var configuration = AlertingConfiguration()
        configuration.groupWaitMilliseconds = 30_000
        configuration.groupIntervalMilliseconds = 60_000
        configuration.repeatIntervalMilliseconds = 600_000
        configure(&configuration)
        let log = ReceiverConfiguration(name: "log", kind: .log)
        return try NotificationRouter(settings: .init(configuration, externalURL: "x"),
                                      receivers: [ReceiverWorker(log, logger: Logger(label: "test"))],
                                      inhibitRules: inhibit.map(InhibitRule.init))
    }

    @Test("group_wait gathers a group; group_interval sends only changes; repeat_interval re-sends; resolved once")
    func grouping() throws {
        let router = try router()
        router.update(rule: "Hot", alerts: [alert("Hot", ["gpu": "0"])], at: 0)
        #expect(router.tick(at: 10_000).isEmpty, "group_wait")
        router.update(rule: "Hot", alerts: [alert("Hot", ["gpu": "0"]), alert("Hot", ["gpu": "1"])], at: 20_000)
        let first = router.tick(at: 30_000)
        #expect(first.count == 1 && first[0].alerts.count == 2, "both GPUs in one notification")
        #expect(router.tick(at: 90_000).isEmpty, "nothing changed")
        router.update(rule: "Hot", alerts: [alert("Hot", ["gpu": "0"]), alert("Hot", ["gpu": "1"], status: .resolved, endsAt: 100_000)], at: 100_000)
        let resolved = router.tick(at: 150_000)
        #expect(resolved.count == 1)
        #expect(resolved.first?.alerts.map(\.status) == [.firing, .resolved])
        #expect(router.tick(at: 210_000).isEmpty, "the resolution went once")
        #expect(router.tick(at: 690_000).isEmpty, "the last notification (150 s) is not 10 minutes old")
        #expect(router.tick(at: 750_000).first?.alerts.count == 1, "repeat_interval re-sends what still fires")
    }

    @Test("an alert that resolves within group_wait is never sent")
    func shortLived() throws {
        let router = try router()
        router.update(rule: "Blip", alerts: [alert("Blip", [:])], at: 0)
        router.update(rule: "Blip", alerts: [alert("Blip", [:], status: .resolved, endsAt: 5_000)], at: 5_000)
        #expect(router.tick(at: 30_000).isEmpty)
    }

    @Test("silences mute matching alerts while they last; inhibition mutes targets while the source fires")
    func muting() throws {
        let router = try router(inhibit: [InhibitRuleConfiguration(source: #"severity="critical""#, target: #"severity="warning""#, equal: ["gpu"])])
        router.setSilences([try ActiveSilence(.init(matchers: "alertname=Noisy", startsAt: 0, endsAt: 100_000, createdBy: "me",
                                                    comment: "maintenance", createdAt: 0))])
        router.update(rule: "Noisy", alerts: [alert("Noisy", [:])], at: 0)
        router.update(rule: "Hot", alerts: [alert("Hot", ["gpu": "0", "severity": "warning"]), alert("Hot", ["gpu": "1", "severity": "warning"])], at: 0)
        router.update(rule: "Lost", alerts: [alert("Lost", ["gpu": "0", "severity": "critical"])], at: 0)
        let sent = router.tick(at: 30_000)
        let names = sent.flatMap(\.alerts).map { "\($0.name):\($0.labels["gpu"] ?? "")" }.sorted()
        #expect(names == ["Hot:1", "Lost:0"])
        #expect(router.muting(["alertname": "Noisy"], at: 50_000).silencedBy.count == 1)
        #expect(router.muting(["alertname": "Hot", "gpu": "0", "severity": "warning"], at: 50_000).inhibited)
        // After the silence ends, the alert is sent at the next group interval.
        #expect(router.tick(at: 90_000).isEmpty)
        #expect(router.tick(at: 150_000).flatMap(\.alerts).map(\.name) == ["Noisy"])
    }

    @Test("matchers: bare values, quotes, regular expressions")
    func matchers() throws {
        let selector = try Silences.parseMatchers(#"alertname=GpuTooHot,gpu=~"0|1",severity!="info""#)
        #expect(selector.matches(Labels(dictionary: ["alertname": "GpuTooHot", "gpu": "1", "severity": "warning"])))
        #expect(!selector.matches(Labels(dictionary: ["alertname": "GpuTooHot", "gpu": "2"])))
        #expect(throws: VigilError.self) { try Silences.parseMatchers("") }
        #expect(throws: VigilError.self) { try Silences.parseMatchers("not a matcher") }
    }
}
