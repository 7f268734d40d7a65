import Foundation
import VigilCore

/// The lifecycle state of an alert instance (Prometheus' names).
public enum AlertState: String, Sendable, Codable, Comparable {
    case inactive, pending, firing

    private var order: Int {
        switch self {
        case .inactive: 0
        case .pending: 1
        case .firing: 2
        }
    }

    public static func < (lhs: AlertState, rhs: AlertState) -> Bool { lhs.order < rhs.order }
}

/// An alert as receivers see it: firing, or resolved at `endsAt`.
public struct Alert: Sendable, Equatable, Codable {
    public enum Status: String, Sendable, Codable {
        case firing, resolved
    }

    public var rule: String
    public var status: Status
    /// All labels, `alertname` and `severity` included.
    public var labels: [String: String]
    public var annotations: [String: String]
    /// When it started firing.
    public var startsAt: Timestamp
    /// When it resolved (nil while firing).
    public var endsAt: Timestamp?
    public var value: Double
    public var generatorURL: String

    public init(rule: String, status: Status, labels: [String: String], annotations: [String: String], startsAt: Timestamp,
                endsAt: Timestamp?, value: Double, generatorURL: String) {
        self.rule = rule
        self.status = status
        self.labels = labels
        self.annotations = annotations
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.value = value
        self.generatorURL = generatorURL
    }

    public var name: String { labels["alertname"] ?? rule }

    /// Alertmanager's fingerprint of the label set: FNV-1a 64 over sorted names and values.
    public var fingerprint: String { Self.fingerprint(labels) }

    public static func fingerprint(_ labels: [String: String]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func add(_ bytes: some Sequence<UInt8>) {
            for byte in bytes {
                hash ^= UInt64(byte)
                hash &*= 0x0000_0100_0000_01b3
            }
        }
        for name in labels.keys.sorted() {
            add(name.utf8)
            add([0xff])
            add(labels[name]!.utf8)
            add([0xff])
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// One alert instance as `vigil alerts` and the API show it.
public struct AlertView: Sendable, Codable, Equatable {
    public var rule: String
    public var state: AlertState
    public var labels: [String: String]
    public var annotations: [String: String]
    public var value: Double
    public var activeAt: Timestamp
    public var firedAt: Timestamp?
    public var resolvedAt: Timestamp?
    public var flapping: Bool
    public var silencedBy: [String]
    public var inhibited: Bool
    public var fingerprint: String
}

/// Renders timestamps as RFC 3339 in UTC with milliseconds, as Alertmanager writes them.
public enum RFC3339 {
    public static func string(_ timestamp: Timestamp) -> String {
        let seconds = time_t(timestamp / 1000)
        var parts = tm()
        var copy = seconds
        gmtime_r(&copy, &parts)
        let ms = Int(timestamp % 1000)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), ms)
    }
}
