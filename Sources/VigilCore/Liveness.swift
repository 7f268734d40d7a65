import Foundation
import Synchronization

/// Whether the daemon's loops are making progress: each part (the collectors, the rule engine, the allocator)
/// beats when it finishes a round, and a part whose last beat is older than its allowance is stalled.
/// `/healthz` answers 503 naming the stalled parts, and the systemd watchdog stops being fed, so a daemon whose
/// rule engine is stuck is restarted instead of reporting "ok" forever.
public final class Liveness: Sendable {
    private struct Beat {
        var last: UInt64
        var allowance: UInt64
    }

    private let beats = Mutex<[String: Beat]>([:])
    private let minimumAllowance: Int64

    /// `minimumAllowance`: the shortest silence that counts as stalled, in ms (a minute; tests use less).
    public init(minimumAllowance: Int64 = 60_000) {
        self.minimumAllowance = minimumAllowance
    }

    /// `part` finished a round; it runs every `interval` ms. It is stalled once no beat came for three intervals
    /// (at least a minute, so one slow round of a slow plugin is not an outage).
    public func beat(_ part: String, every interval: Int64) {
        let allowance = UInt64(max(3 * min(max(interval, 0), Bounds.maxDuration), minimumAllowance)) * 1_000_000
        let now = DispatchTime.now().uptimeNanoseconds
        beats.withLock { $0[part] = Beat(last: now, allowance: allowance) }
    }

    /// A part that stopped on purpose (a removed collector) is no longer watched.
    public func forget(_ part: String) {
        _ = beats.withLock { $0.removeValue(forKey: part) }
    }

    /// The stalled parts, with how long each has been silent, in seconds; empty when all is well.
    public func stalled() -> [(part: String, silentSeconds: Double)] {
        let now = DispatchTime.now().uptimeNanoseconds
        return beats.withLock { beats in
            beats.compactMap { part, beat in
                let silent = now >= beat.last ? now - beat.last : 0
                return silent > beat.allowance ? (part, Double(silent) / 1e9) : nil
            }.sorted { $0.part < $1.part }
        }
    }
}
