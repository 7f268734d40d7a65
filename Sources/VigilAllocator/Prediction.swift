import Foundation
import VigilCore

/// Run times of finished tasks by prediction key (kind, or the program's name): the median of recent
/// runs predicts the next one, capped by its time limit.
public struct DurationHistory: Sendable {
    /// Runs kept per key. Default 20.
    public var keep: Int
    private var runs: [String: [Int64]] = [:]
    /// Recent runs of every kind, for tasks of a kind never seen.
    private var recent: [Int64] = []

    public init(keep: Int = 20) { self.keep = keep }

    public mutating func record(_ key: String, _ duration: Int64) {
        var list = runs[key, default: []]
        list.append(duration)
        if list.count > keep { list.removeFirst(list.count - keep) }
        runs[key] = list
        medians[key] = Self.median(list)
        recent.append(duration)
        if recent.count > keep * 5 { recent.removeFirst(recent.count - keep * 5) }
        hostMedian = Self.median(recent)
    }

    /// Median of the host's recent runs of any kind.
    public private(set) var hostMedian: Int64?

    /// Medians by key, kept up to date by `record` (predictions run for every queued task on every pass).
    private var medians: [String: Int64] = [:]

    public func median(_ key: String) -> Int64? { medians[key] }

    static func median(_ list: [Int64]) -> Int64? {
        guard !list.isEmpty else { return nil }
        let sorted = list.sorted()
        let mid = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    }

    public enum Basis: String, Codable, Sendable {
        /// Median of earlier runs of the same kind.
        case history
        /// The submitter's expected duration.
        case declared
        /// The time limit (no history, no declaration).
        case limit
        /// Median of the host's recent runs of any kind (a kind never seen).
        case host
        /// The policy's default duration.
        case `default`
    }

    /// The planned duration of `spec` and what it rests on.
    public func predict(_ spec: TaskSpec, defaultDuration: Int64) -> (Int64, Basis) {
        if let median = median(spec.predictionKey) {
            return (spec.timeLimit.map { min($0, median) } ?? median, .history)
        }
        if let expected = spec.expectedDuration { return (spec.timeLimit.map { min($0, expected) } ?? expected, .declared) }
        if let limit = spec.timeLimit { return (limit, .limit) }
        if let host = hostMedian { return (host, .host) }
        return (defaultDuration, .default)
    }
}
