import Foundation
import Synchronization

/// Where "now" comes from. Everything that stamps or compares times takes one, so tests and
/// simulations run in virtual time through the same code.
public protocol WallClock: Sendable {
    /// Milliseconds since the Unix epoch.
    func now() -> Timestamp
}

/// The real clock.
public struct SystemWallClock: WallClock {
    public init() {}

    public func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(spec.tv_sec) * 1000 + Timestamp(spec.tv_nsec) / 1_000_000
    }
}

/// A clock that only moves when told to.
public final class ManualWallClock: WallClock {
    private let current: Mutex<Timestamp>

    public init(_ start: Timestamp = 1_800_000_000_000) {
        current = Mutex(start)
    }

    public func now() -> Timestamp { current.withLock { $0 } }

    public func advance(by milliseconds: Int64) {
        current.withLock { $0 += milliseconds }
    }

    public func set(_ timestamp: Timestamp) {
        current.withLock { $0 = timestamp }
    }
}
