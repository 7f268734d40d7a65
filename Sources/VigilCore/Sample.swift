/// Milliseconds since the Unix epoch, as Prometheus keeps time.
public typealias Timestamp = Int64

/// What kind of metric a family is. Counters only go up (resets to zero are allowed).
public enum MetricKind: String, Sendable, Hashable, Codable {
    case gauge
    case counter
    case untyped
}

/// One observation: when and what.
public struct Sample: Hashable, Sendable {
    public var timestamp: Timestamp
    public var value: Double

    public init(_ timestamp: Timestamp, _ value: Double) {
        self.timestamp = timestamp
        self.value = value
    }
}

/// The staleness marker of Prometheus: a NaN with a distinct bit pattern, written when a series
/// disappears so that instant queries stop returning it at once.
public enum StaleMarker {
    public static let bitPattern: UInt64 = 0x7ff0_0000_0000_0002
    public static let value = Double(bitPattern: bitPattern)

    @inlinable
    public static func isStale(_ value: Double) -> Bool { value.bitPattern == bitPattern }
}
